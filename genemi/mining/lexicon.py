"""The substitution lexicon that ships with the project (``genemi/lexicon/*.json``).

Rule-based negatives and offline portrayals draw their replacements from here, never from a
model, so a negative caption is false by construction:

* attribute scales (colours, materials, sizes): each scale is a list of synonym groups; a word
  is replaced only by a word of *another* group of its own scale ("big" never becomes "large");
* spatial relations and their inverses ("on" -> "under");
* the 80 COCO categories grouped by supercategory: an object is replaced by another category
  of its supercategory (a dog by a cat, never by a pizza), people words by other people words.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

LEXICON_DIR = Path(__file__).resolve().parent.parent / "lexicon"
ATTRIBUTE_FILES = ("colors", "materials", "sizes")


def _load(directory: Path, name: str) -> dict:
    path = directory / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: lexicon file missing (it ships with the package under genemi/lexicon/)"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from e


def _need(d: dict, key: str, where: Path) -> object:
    if key not in d:
        raise ValueError(f"{where}: missing key {key!r}")
    return d[key]


@dataclass(frozen=True)
class Lexicon:
    # kind ("colors"/"materials"/"sizes") -> scale name -> synonym groups
    scales: dict[str, dict[str, tuple[tuple[str, ...], ...]]]
    relations: dict[str, str]  # relation phrase -> its inverse
    supercategories: dict[str, tuple[str, ...]]
    aliases: dict[str, str]  # caption word -> COCO category
    subtypes: dict[str, tuple[str, ...]]  # category -> interchangeable words (person: man, woman, ...)
    irregular_plurals: dict[str, str]

    @classmethod
    def load(cls, directory: str | Path | None = None) -> Lexicon:
        """Read and check the JSON files; errors name the file and key."""
        directory = Path(directory) if directory is not None else LEXICON_DIR
        scales: dict[str, dict[str, tuple[tuple[str, ...], ...]]] = {}
        for kind in ATTRIBUTE_FILES:
            raw = _need(_load(directory, kind), "scales", directory / f"{kind}.json")
            scales[kind] = {
                name: tuple(tuple(w.lower() for w in g) for g in groups) for name, groups in raw.items()
            }
        rel_path = directory / "relations.json"
        relations = dict(_need(_load(directory, "relations"), "inverses", rel_path))
        for rel, inv in relations.items():
            if inv not in relations:
                raise ValueError(f"{rel_path}: inverse {inv!r} of {rel!r} is not itself a key; add it")
        coco_path = directory / "coco_categories.json"
        coco = _load(directory, "coco_categories")
        supers = {k: tuple(v) for k, v in _need(coco, "supercategories", coco_path).items()}
        categories = {c for v in supers.values() for c in v}
        aliases = dict(_need(coco, "aliases", coco_path))
        for word, cat in aliases.items():
            if cat not in categories:
                raise ValueError(f"{coco_path}: alias {word!r} points to unknown category {cat!r}")
        return cls(
            scales=scales,
            relations=relations,
            supercategories=supers,
            aliases=aliases,
            subtypes={k: tuple(v) for k, v in coco.get("subtypes", {}).items()},
            irregular_plurals=dict(coco.get("irregular_plurals", {})),
        )

    # -- attributes ---------------------------------------------------------------------------
    def attribute_kind(self, word: str) -> str | None:
        """ "colors", "materials" or "sizes" for a known attribute word, else None."""
        word = word.lower()
        for kind, scales in self.scales.items():
            if any(word in g for groups in scales.values() for g in groups):
                return kind
        return None

    def attribute_alternatives(self, word: str) -> list[str]:
        """Words that contradict ``word`` (other groups of its first scale), sorted; [] if unknown."""
        word = word.lower()
        for scales in self.scales.values():
            for groups in scales.values():
                for i, g in enumerate(groups):
                    if word in g:
                        return sorted({w for j, h in enumerate(groups) if j != i for w in h})
        return []

    def colors(self) -> list[str]:
        """One canonical word per colour group, in file order."""
        return [g[0] for groups in self.scales["colors"].values() for g in groups]

    # -- relations ----------------------------------------------------------------------------
    def relation_phrases(self) -> list[tuple[str, ...]]:
        """Relation phrases as token tuples, longest first (so "in front of" wins over "in")."""
        return sorted((tuple(r.split()) for r in self.relations), key=lambda t: (-len(t), t))

    def inverse_relation(self, phrase: str) -> str | None:
        return self.relations.get(phrase.lower())

    # -- objects ------------------------------------------------------------------------------
    def category(self, word: str) -> str | None:
        """COCO category named by a (singular, lower-case) caption word or phrase, else None."""
        word = word.lower()
        if any(word in v for v in self.supercategories.values()):
            return word
        return self.aliases.get(word)

    def object_phrases(self) -> list[tuple[str, ...]]:
        """Every word or phrase that names an object, as token tuples, longest first."""
        words = {c for v in self.supercategories.values() for c in v} | set(self.aliases)
        words |= {w for v in self.subtypes.values() for w in v}
        return sorted((tuple(w.split()) for w in words), key=lambda t: (-len(t), t))

    def object_alternatives(self, word: str) -> list[str]:
        """Other objects of the same kind, sorted: subtypes of one category (man -> woman), else
        the other categories of the word's supercategory (dog -> cat); [] if unknown."""
        word = word.lower()
        for group in self.subtypes.values():
            if word in group:
                return sorted(w for w in group if w != word)
        cat = self.category(word)
        if cat is None:
            return []
        for members in self.supercategories.values():
            if cat in members:
                return sorted(c for c in members if c != cat)
        return []

    def pluralize(self, phrase: str) -> str:
        """Plural of a noun phrase (its last word): "hot dog" -> "hot dogs", "knife" -> "knives"."""
        if phrase.lower() in self.irregular_plurals:
            return self.irregular_plurals[phrase.lower()]
        *head, last = phrase.split()
        if last.lower() in self.irregular_plurals:
            plural = self.irregular_plurals[last.lower()]
        elif last.endswith(("s", "sh", "ch", "x", "z")):
            plural = last + "es"
        elif len(last) > 1 and last.endswith("y") and last[-2] not in "aeiou":
            plural = last[:-1] + "ies"
        else:
            plural = last + "s"
        return " ".join([*head, plural])


@functools.lru_cache(maxsize=1)
def default_lexicon() -> Lexicon:
    """The packaged lexicon, loaded once."""
    return Lexicon.load()
