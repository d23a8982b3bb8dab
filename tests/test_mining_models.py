"""The real-model wrappers on tiny random-init Grounding DINO / SAM / SD-inpaint / BLIP (CPU, seconds)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from genemi.mining import models as M
from genemi.mining import tiny


@pytest.fixture(scope="module")
def tiny_paths(tmp_path_factory) -> dict:
    return tiny.save_all(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return Image.fromarray((np.random.default_rng(0).random((48, 80, 3)) * 255).astype(np.uint8))


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# -- pure helpers against plain references ---------------------------------------------------------
@pytest.mark.parametrize(
    "shape, box, window",
    [
        ((600, 800), (100, 120, 140, 160), 512),  # small object: grows to a 512 window
        ((600, 800), (0, 0, 30, 20), 512),  # at the corner: window shifted inside the image
        ((300, 400), (50, 60, 90, 80), 512),  # image smaller than the window: whole image
        ((900, 900), (10, 100, 700, 300), 512),
    ],  # object wider than the window: its own extent
)
def test_find_square_contains_the_mask_and_stays_inside(shape, box, window):
    mask = np.zeros(shape, bool)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = True
    cx0, cx1, cy0, cy1 = M.find_square(mask, window)
    h, w = shape
    assert 0 <= cx0 < cx1 <= w and 0 <= cy0 < cy1 <= h
    assert cx0 <= x0 and x1 <= cx1 and cy0 <= y0 and y1 <= cy1
    side = max(window, x1 - x0, y1 - y0)
    assert (cx1 - cx0, cy1 - cy0) == (min(side, w), min(side, h))


def test_find_square_rejects_an_empty_mask():
    with pytest.raises(ValueError, match="empty mask"):
        M.find_square(np.zeros((10, 10), bool))


def test_iva_score_matches_a_pixel_loop():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (6, 5, 3))
    ims = [base.copy() for _ in range(3)]
    ims[1][:2] = rng.integers(0, 255, (2, 5, 3))  # two rows vary
    ims = [i.astype(np.uint8) for i in ims]
    ref = 0
    for y, x in itertools.product(range(6), range(5)):
        stds = [np.std([float(im[y, x, c]) for im in ims]) for c in range(3)]
        ref += np.mean(stds) > 10
    assert M.iva_score(ims) == pytest.approx(100 * ref / 30)
    assert M.iva_score(ims[:1]) == 0.0  # one variation: nothing varies


def test_caption_noun_tagger_without_parser():
    tagger = M.CaptionNounTagger()
    assert tagger.tag(Image.new("RGB", (4, 4)), "Two dogs chase a frisbee near a bench.") == [
        "dog",
        "frisbee",
        "bench",
    ]
    with pytest.raises(ValueError, match="caption=None"):
        tagger.tag(Image.new("RGB", (4, 4)))


def test_grounding_tagger_keeps_exact_vocabulary_labels():
    from genemi.mining.interfaces import Detection

    class Grounder:
        def __init__(self):
            self.prompts = []

        def ground(self, image, phrase):
            self.prompts.append(phrase)
            return [
                Detection((0, 0, 1, 1), 0.5, "dog"),
                Detection((0, 0, 1, 1), 0.9, "cat [SEP]"),
                Detection((0, 0, 1, 1), 0.8, "dog cat"),  # merged span: not one tag
            ]

    g = Grounder()
    tags = M.GroundingTagger(g, per_prompt=40).tag(Image.new("RGB", (4, 4)))
    assert tags == ["cat", "dog"]  # best score first
    assert len(g.prompts) == 2 and g.prompts[0].startswith("airplane . apple . ")  # 80 names, 40 a prompt


# -- weights doors --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cls, key",
    [
        (M.GroundingDinoGrounder, "grounding_dino"),
        (M.SDInpaintEditor, "sd_inpaint"),
        (M.BlipItmScorer, "blip_itm"),
        (M.TextGenPortrayer, "portrayer"),
    ],
)
def test_missing_hf_weights_name_the_model_and_the_key(cls, key, tmp_path):
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(FileNotFoundError, match=rf"weights '{missing}' not found offline.*mine_real\.{key}"):
        cls.from_pretrained(missing)


def test_missing_sam_checkpoint_names_the_file(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"SAM checkpoint .*sam_vit_h\.pth.*mine_real\.sam_checkpoint"
    ):
        M.SamSegmenter.from_pretrained(tmp_path / "sam_vit_h.pth")


# -- tiny real models -----------------------------------------------------------------------------
def test_grounding_dino_boxes_are_sorted_nms_filtered_and_inside(tiny_paths, image):
    gd = M.GroundingDinoGrounder.from_pretrained(
        tiny_paths["grounding_dino"], box_threshold=0.0, text_threshold=0.0
    )
    dets = gd.ground(image, "dog")
    assert dets, "a zero threshold keeps at least one query"
    scores = [d.score for d in dets]
    assert scores == sorted(scores, reverse=True)
    for a, b in itertools.combinations(dets, 2):
        assert _iou(a.box, b.box) <= gd.nms_iou + 1e-6
    for d in dets:
        x0, y0, x1, y1 = d.box
        assert 0 <= x0 <= x1 <= image.width and 0 <= y0 <= y1 <= image.height
    strict = M.GroundingDinoGrounder(gd.model, gd.processor, box_threshold=1.01)
    assert strict.ground(image, "dog") == []


def test_sam_mask_shape_and_cache(tiny_paths, image):
    sam = M.SamSegmenter.from_pretrained(tiny_paths["sam_checkpoint"], "tiny")
    m1 = sam.segment(image, (10, 10, 40, 30))
    assert m1.shape == (48, 80) and m1.dtype == bool
    key = sam._key
    m2 = sam.segment(image, (10, 10, 40, 30))
    assert sam._key == key and np.array_equal(m1, m2)  # embedding reused, same answer


def test_sd_inpaint_changes_only_the_mask_and_is_seeded(tiny_paths, image):
    sd = M.SDInpaintEditor.from_pretrained(tiny_paths["sd_inpaint"], steps=2, window=tiny.SIZE)
    mask = np.zeros((48, 80), bool)
    mask[10:30, 20:50] = True
    a = np.asarray(sd.edit(image, mask, "a red cat", seed=3))
    b = np.asarray(sd.edit(image, mask, "a red cat", seed=3))
    c = np.asarray(sd.edit(image, mask, "a red cat", seed=4))
    src = np.asarray(image)
    assert a.shape == src.shape and a.dtype == np.uint8
    assert np.array_equal(a[~mask], src[~mask])  # pixels outside stay
    assert not np.array_equal(a[mask], src[mask])
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(ValueError, match="does not match image"):
        sd.edit(image, mask[:10], "x", 0)


def test_blip_itm_score_is_a_deterministic_logit(tiny_paths, image):
    blip = M.BlipItmScorer.from_pretrained(tiny_paths["blip_itm"])
    s = blip.score(image, "a red dog on the bench")
    assert isinstance(s, float) and np.isfinite(s)
    assert s == blip.score(image, "a red dog on the bench")


def test_text_generation_portrayer_parses_or_falls_back(tmp_path):
    prompts = []

    def reply(prompt, seed):
        prompts.append(prompt)
        return (
            "1) a bald eagle with a white head on a rock (bald eagle)\n2) a blue jay on a branch (blue jay)\n"
        )

    got = M.TextGenPortrayer(reply).portray("bird", "a bird on a rock", 2, np.random.default_rng(0))
    assert [p.short for p in got] == ["bald eagle", "blue jay"]
    assert got[0].desc == "a bald eagle with a white head on a rock"
    assert "Sentence: a bird on a rock" in prompts[0] and prompts[0].endswith("bird:\n")
    # a tiny random LM answers noise: the lexicon steps in, seeded
    lm = M.TextGenPortrayer.from_pretrained(str(tiny.save_causal_lm(tmp_path / "lm")), max_new_tokens=8)
    a = lm.portray("dog", "a dog", 2, np.random.default_rng(3))
    assert len(a) == 2 and a == lm.portray("dog", "a dog", 2, np.random.default_rng(3))
