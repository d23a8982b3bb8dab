"""Caption parsing, rewriting, rule negatives and portrayals on hand-annotated stanza Documents."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from genemi.mining import parse as P
from genemi.mining import portrayals as Y
from genemi.mining import rewrite as W
from genemi.mining import rules as R
from genemi.mining.lexicon import Lexicon, default_lexicon

FIXTURES = Path(__file__).parent / "fixtures"


def _token(spec: str, i: int) -> dict:
    text, upos, xpos, lemma, head, deprel, feats = spec.split("|")
    tok = {
        "id": i,
        "text": text,
        "upos": upos,
        "xpos": xpos,
        "lemma": lemma,
        "head": int(head),
        "deprel": deprel,
    }
    if feats:
        tok["feats"] = feats
    return tok


@pytest.fixture(scope="module")
def docs() -> dict:
    raw = json.loads((FIXTURES / "parsed_captions.json").read_text())["captions"]
    return {
        name: P.doc_from_dicts(
            [{"tokens": [_token(s, i + 1) for i, s in enumerate(v["tokens"])], "tree": v["tree"]}]
        )
        for name, v in raw.items()
    }


class FixtureParser:
    """Stands in for stanza: caption text -> the annotated Document of that caption."""

    def __init__(self, docs: dict):
        self.by_text = {P.detokenize(w.text for w in d.sentences[0].words): d for d in docs.values()}

    def __call__(self, text: str):
        return self.by_text[text]


# -- lexicon -------------------------------------------------------------------------------------
def test_lexicon_is_consistent():
    lex = default_lexicon()
    assert sum(len(v) for v in lex.supercategories.values()) == 80  # all COCO categories
    for rel, inv in lex.relations.items():
        assert inv in lex.relations, rel
    # antonym scales never hand out a synonym
    assert "large" not in lex.attribute_alternatives("big")
    assert set(lex.attribute_alternatives("big")) >= {"small", "tiny"}
    assert "grey" not in lex.attribute_alternatives("gray") and "red" in lex.attribute_alternatives("gray")
    assert lex.object_alternatives("puppy") == lex.object_alternatives("dog")
    assert "cat" in lex.object_alternatives("dog") and "pizza" not in lex.object_alternatives("dog")
    assert lex.object_alternatives("man") == ["boy", "girl", "woman"]
    assert [lex.pluralize(w) for w in ("hot dog", "knife", "bus", "person", "cherry")] == [
        "hot dogs",
        "knives",
        "buses",
        "people",
        "cherries",
    ]


def test_lexicon_errors_name_the_file_and_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="colors.json"):
        Lexicon.load(tmp_path)
    src = Path(P.__file__).parent.parent / "lexicon"
    for f in src.glob("*.json"):
        (tmp_path / f.name).write_text(f.read_text())
    (tmp_path / "relations.json").write_text(json.dumps({"inverses": {"on": "beneath"}}))
    with pytest.raises(ValueError, match="relations.json.*'beneath'"):
        Lexicon.load(tmp_path)


# -- chunking and rewriting ----------------------------------------------------------------------
def test_chunks_follow_the_seed_recursion(docs):
    assert W.chunks(docs["red_dog"].sentences[0]) == ["a red dog", "sits", "on", "the mat", "."]
    assert W.chunks(docs["man_bus"].sentences[0]) == [
        "a man",
        "in",
        "front",
        "of",
        "a bus",
        "holding",
        "an umbrella",
    ]


def test_rewrite_replaces_the_object_chunk(docs):
    assert W.rewrite_caption(docs["red_dog"], "dog", "bald eagle") == "a bald eagle sits on the mat."
    # number kept, determiner kept
    assert (
        W.rewrite_caption(docs["two_cats"], "cat", "golden retriever")
        == "two golden retrievers are under a wooden table."
    )
    # "an" re-agrees with the new word; multi-word objects match as a whole
    assert (
        W.rewrite_caption(docs["man_bus"], "umbrella", "red kite")
        == "a man in front of a bus holding a red kite"
    )
    assert (
        W.rewrite_caption(docs["hot_dog"], "hot dog", "pizza slice") == "There is a pizza slice on a plate."
    )


def test_rewrite_matches_whole_words_only(docs):
    # the seed's substring test would have rewritten "catch" for the object "cat"
    assert W.rewrite_caption(docs["catch"], "cat", "tiger") is None


def test_variation_captions_fix_the_swapped_argument_bug(docs):
    rw = W.CaptionRewriter(FixtureParser(docs))
    caps = W.variation_captions(
        rw,
        "dog",
        "bald eagle",
        "a red dog sits on the mat.",
        ["There is a small hot dog on a plate.", "two cats are under a wooden table."],
    )
    # the seed returned the bare word "dog" for the original caption; we rewrite it
    assert caps == ["a bald eagle sits on the mat.", "There is a bald eagle on a plate."]
    assert "dog" not in caps
    # nothing mentions the item: the seed's fallback
    assert W.variation_captions(rw, "zebra", "okapi", "a red dog sits on the mat.") == [
        "a red dog sits on the mat. and okapi"
    ]


def test_plain_rewriter_without_parser():
    rw = W.CaptionRewriter(None)
    assert rw.rewrite("A dog and two dogs.", "dog", "orange cat") == "An orange cat and two orange cats."
    assert rw.rewrite("three knives on a table", "knife", "red fork") == "three red forks on a table"
    assert rw.rewrite("a hotdog", "dog", "cat") is None
    # attribute words before the object belong to it, as in the chunk rewrite
    assert rw.rewrite("a small red circle left of a square", "circle", "blue triangle") == (
        "a blue triangle left of a square"
    )


# -- rule-based negatives ------------------------------------------------------------------------
def test_attribute_negatives_stay_on_their_scale(docs):
    cands = R.negative_candidates(docs["red_dog"], R.ATTRIBUTE)
    colours = {c.split()[1] for c in cands}
    assert "red" not in colours and {"blue", "green"} <= colours
    assert all(c.endswith(" dog sits on the mat.") for c in cands)
    assert "an orange dog sits on the mat." in cands  # article re-agreed
    sizes = {c.split()[3] for c in R.negative_candidates(docs["hot_dog"], R.ATTRIBUTE)}
    assert sizes == {"big", "giant", "huge", "large"}  # never the synonyms little/tiny
    assert R.negative_candidates(docs["man_bus"], R.ATTRIBUTE) == []


def test_object_negatives_keep_supercategory_number_and_article(docs):
    cands = R.negative_candidates(docs["two_cats"], R.OBJECT)
    assert "two horses are under a wooden table." in cands  # plural kept
    assert "two cats are under a wooden chair." in cands  # furniture for furniture
    assert not any("pizza" in c for c in cands)
    man = R.negative_candidates(docs["man_bus"], R.OBJECT)
    assert "a woman in front of a bus holding an umbrella" in man
    assert "a man in front of a bus holding a backpack" in man  # "an" -> "a"
    assert "There is a small apple on a plate." in R.negative_candidates(docs["hot_dog"], R.OBJECT)
    assert "Two horses are under a wooden table." not in cands  # lower-case stays lower-case
    toks = [
        {
            "id": 1,
            "text": "Dogs",
            "upos": "NOUN",
            "xpos": "NNS",
            "lemma": "dog",
            "head": 2,
            "deprel": "nsubj",
        },
        {"id": 2, "text": "run", "upos": "VERB", "xpos": "VBP", "lemma": "run", "head": 0, "deprel": "root"},
    ]
    assert "Cats run" in R.negative_candidates(P.doc_from_dicts([{"tokens": toks}]), R.OBJECT)
    assert R.negative_candidates(docs["catch"], R.OBJECT) == [
        "a girl plays catch",
        "a man plays catch",
        "a woman plays catch",
    ]


def test_relation_negatives_use_the_inverse_longest_phrase_first(docs):
    assert R.negative_candidates(docs["red_dog"], R.RELATION) == ["a red dog sits under the mat."]
    assert R.negative_candidates(docs["two_cats"], R.RELATION) == ["two cats are on a wooden table."]
    assert R.negative_candidates(docs["man_bus"], R.RELATION) == ["a man behind a bus holding an umbrella"]


def test_count_negatives_reagree_noun_and_verb(docs):
    assert R.negative_candidates(docs["red_dog"], R.COUNT) == ["two red dogs sit on the mat."]
    assert set(R.negative_candidates(docs["two_cats"], R.COUNT)) == {
        "one cat is under a wooden table.",
        "three cats are under a wooden table.",
        "two cats are under two wooden tables.",
    }
    assert R.negative_candidates(docs["hot_dog"], R.COUNT) == ["There are two small hot dogs on a plate."]


def test_rule_negatives_are_seeded_and_typed(docs):
    a = R.rule_negatives(docs["two_cats"], np.random.default_rng((0, 7)), max_per_type=2)
    b = R.rule_negatives(docs["two_cats"], np.random.default_rng((0, 7)), max_per_type=2)
    assert a == b
    assert [n.type for n in a] == ["attribute"] * 2 + ["object"] * 2 + ["relation_pred"] + ["obj_count"] * 2
    assert all(n.caption != "two cats are under a wooden table." and n.image is None for n in a)
    with pytest.raises(ValueError, match="unknown negative type 'colour'"):
        R.negative_candidates(docs["two_cats"], "colour")


def test_add_rule_negatives_to_records(docs):
    from genemi.manifest import Negative, Record

    parse = FixtureParser(docs)
    recs = [
        Record(id="b", image="b.png", caption="two cats are under a wooden table."),
        Record(
            id="a", image="a.png", caption="a red dog sits on the mat.", negatives=(Negative("x", "kept"),)
        ),
    ]
    out = R.add_rule_negatives(recs, parse, seed=0, types=(R.RELATION, R.COUNT))
    assert [r.id for r in out] == ["b", "a"]
    assert out[1].negatives[0] == Negative("x", "kept")  # existing negatives kept, new ones appended
    assert [n.caption for n in out[1].negatives[1:]] == [
        "a red dog sits under the mat.",
        "two red dogs sit on the mat.",
    ]
    # a record's negatives do not depend on its neighbours
    assert R.add_rule_negatives(recs[:1], parse, seed=0, types=(R.RELATION, R.COUNT))[0] == out[0]


def test_caption_nouns(docs):
    assert P.caption_nouns(docs["man_bus"]) == ["man", "bus", "umbrella"]
    assert P.caption_nouns(docs["two_cats"]) == ["cat", "table"]
    assert P.plain_nouns("Two cats under a dining table near a hot dog.") == [
        "cat",
        "dining table",
        "hot dog",
    ]


# -- parser door and portrayals ------------------------------------------------------------------
def test_missing_stanza_models_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"stanza models for 'en' not found under .*stanza\.download"):
        P.StanzaParser.from_pretrained(tmp_path / "stanza")
    # a folder that looks right but holds no usable models fails the same way, with stanza's reason
    (tmp_path / "stanza" / "en").mkdir(parents=True)
    (tmp_path / "stanza" / "resources.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"stanza\.download.*ValueError"):
        P.StanzaParser.from_pretrained(tmp_path / "stanza")


def test_doc_from_dicts_checks_tree_against_tokens():
    toks = [
        {"id": 1, "text": "a", "upos": "DET", "head": 2, "deprel": "det"},
        {"id": 2, "text": "dog", "upos": "NOUN", "head": 0, "deprel": "root"},
    ]
    with pytest.raises(ValueError, match="sentence 0: tree leaves"):
        P.doc_from_dicts([{"tokens": toks, "tree": "(ROOT (NP (DT a) (NN cat)))"}])


def test_parse_portrayals_keeps_long_and_short():
    reply = (
        "bird:\n1) a bald eagle with white head feathers (bald eagle)\n"
        "2) a small blue jay on a branch (blue jay)\n"
        "rock:\n1) a mossy green boulder (green boulder)\n"
    )
    got = Y.parse_portrayals(reply, ["bird", "rock", "tree"])
    assert got["bird"][0] == Y.Portrayal("a bald eagle with white head feathers", "bald eagle")
    assert [p.short for p in got["bird"]] == ["bald eagle", "blue jay"]
    assert set(got) == {"bird", "rock"}


def test_lexicon_portrayer_is_seeded_and_mixes_types():
    p = Y.LexiconPortrayer()
    a = p.portray("dog", "a dog", 4, np.random.default_rng((1, 2)))
    assert a == p.portray("dog", "a dog", 4, np.random.default_rng((1, 2)))
    assert len(a) == 4 and len({x.short for x in a}) == 4
    types = [Y.edit_type("dog", x.short) for x in a]
    assert types.count("attribute") == 2 and types.count("object") == 2
    assert all(x.short in x.desc for x in a)
    # a closed world (e.g. the synthetic one): its palette and shapes, the short form as prompt
    synth = Y.LexiconPortrayer(colors=["red", "blue"], objects=["circle", "square"], template="{short}")
    got = synth.portray("circle", "a red circle", 3, np.random.default_rng(0))
    assert {x.short for x in got} <= {"red circle", "blue circle", "red square", "blue square"}
    assert all(x.desc == x.short for x in got) and len(got) == 3


@pytest.mark.parametrize(
    "item, short, kind",
    [
        ("dog", "brown dog", "attribute"),
        ("hot dog", "giant hot dog", "attribute"),
        ("dog", "black cat", "object"),
        ("man", "tall woman", "object"),  # people words are distinct objects
        ("person", "red man", "variation"),  # a man is still a person
        ("bird", "bald eagle", "variation"),  # hyponym: "a bird ..." may stay true
        ("puppy", "white dog", "variation"),
        ("mat", "red rug", "variation"),  # unknown objects: no claim
    ],
)
def test_edit_type(item, short, kind):
    assert Y.edit_type(item, short) == kind
