"""Failed edits made on purpose (genemi/mining/corrupt.py), on fake models with known boxes."""

from __future__ import annotations

import numpy as np
import pytest
from mining_fakes import FakeEditor, FakeScorer, FakeSegmenter, FakeTagger
from PIL import Image

from genemi.mining.chain import Chain
from genemi.mining.corrupt import edit_variation, wrong_object
from genemi.mining.interfaces import Detection
from genemi.mining.portrayals import Portrayal

BOXES = {"dog": (0, 0, 16, 16), "bench": (16, 16, 32, 32), "cat": (2, 2, 16, 16), "car": (0, 16, 16, 32)}
IMAGE = Image.new("RGB", (32, 32), (100, 100, 100))
PORTRAYALS = [Portrayal("a red dog", "red dog"), Portrayal("a blue dog", "blue dog")]


class BoxGrounder:
    """Each phrase's own box from BOXES; a phrase it does not know has none."""

    def ground(self, image, phrase):
        return [Detection(tuple(map(float, BOXES[phrase])), 0.9, phrase)] if phrase in BOXES else []


def chain() -> Chain:
    return Chain(FakeTagger(), BoxGrounder(), FakeSegmenter(), FakeEditor(), FakeScorer())


def mask(name: str) -> np.ndarray:
    return FakeSegmenter().segment(IMAGE, BOXES[name])


def edit(tags, fail, portrayals=PORTRAYALS, j=1):
    """The dog's variation ``j`` (seed 5), failed as ``fail`` asks where it can be."""
    return edit_variation(chain(), IMAGE, mask("dog"), "dog", tags, portrayals, j, 5, fail, 10.0)


def test_misplaced_paints_the_portrayal_over_the_next_other_object_and_leaves_the_item_alone():
    dog = mask("dog")
    var, shows, failed = edit(["dog", "bench"], "misplaced")
    arr, was = np.asarray(var), np.asarray(IMAGE)
    assert failed and shows == "blue dog over the bench"
    assert (arr[dog] == was[dog]).all()  # the named object as it was
    assert (arr[mask("bench")] != was[mask("bench")]).any()  # the other one painted
    # the next other tag in tagger order, wrapping past the end: for "bench" among these, "cat"
    tags = ["dog", "unknown", "bench", "cat"]
    assert wrong_object(chain(), IMAGE, "bench", tags, mask("bench"))[0] == "cat"


def test_an_item_with_no_other_object_of_its_own_keeps_its_right_edit():
    dog = mask("dog")
    right = np.asarray(FakeEditor().edit(IMAGE, dog, "a blue dog", 5))
    # no other tag; another tag without a box; another whose mask is mostly the item's (IoU 0.77 >= 0.5)
    for tags in (["dog"], ["dog", "unknown"], ["dog", "cat"]):
        assert wrong_object(chain(), IMAGE, "dog", tags, dog) is None
        var, shows, failed = edit(tags, "misplaced")
        assert not failed and shows == "blue dog" and (np.asarray(var) == right).all()
    # a box that only touches the item's is another object's (IoU 0)
    assert wrong_object(chain(), IMAGE, "dog", ["dog", "car"], dog)[0] == "car"


def test_an_unknown_kind_is_refused_not_mined_as_right():
    import pytest

    with pytest.raises(ValueError, match="corrupt_as: 'blurred' is none of unchanged, portrayal, misplaced"):
        edit(["dog"], "blurred")


def test_the_other_kinds_and_no_failure():
    right = np.asarray(FakeEditor().edit(IMAGE, mask("dog"), "a blue dog", 5))
    var, shows, failed = edit(["dog"], None)
    assert (np.asarray(var) == right).all() and shows == "blue dog" and not failed
    var, shows, failed = edit(["dog"], "portrayal")
    assert failed and shows == "red dog"  # the next portrayal, wrapping
    var, shows, failed = edit(["dog"], "unchanged")
    assert failed and shows == "dog" and (np.asarray(var) == np.asarray(IMAGE)).all()
    # one portrayal has no other to paint: the right edit
    var, shows, failed = edit(["dog"], "portrayal", PORTRAYALS[1:], 0)
    assert not failed and (np.asarray(var) == right).all()
    # an edit that changes no pixel (the object's own look) has nothing to undo: not counted as failed
    keep = Chain(FakeTagger(), BoxGrounder(), FakeSegmenter(), KeepEditor(), FakeScorer())
    dog = mask("dog")
    _, shows, failed = edit_variation(keep, IMAGE, dog, "dog", ["dog"], PORTRAYALS, 1, 5, "unchanged", 1)
    assert not failed and shows == "blue dog"


class KeepEditor:
    def edit(self, image, mask, prompt, seed):
        return image.copy()


def test_a_colour_is_named_by_its_group_and_an_unknown_unit_is_refused():
    from genemi.mining.corrupt import color_of, failing_colors, variation_fails
    from genemi.mining.lexicon import default_lexicon

    lex = default_lexicon()
    assert color_of("a violet bus", lex) == "purple" and color_of("a Grey cat", lex) == "gray"
    assert color_of("a striped cat", lex) is None
    colors = tuple(lex.colors())
    assert len(failing_colors(5, 1 / 3, colors)) == round(len(colors) / 3)
    fails = failing_colors(5, 1 / 3, colors)
    assert variation_fails("color", 5, "x", 1 / 3, Portrayal("a violet bus", "violet bus"), None) == (
        "purple" in fails
    )
    assert not variation_fails("color", 5, "x", 1 / 3, Portrayal("a striped bus", "striped bus"), None)
    with pytest.raises(ValueError, match="mine_real.corrupt_by: 'word' is none of variation, prompt, color"):
        variation_fails("word", 5, "x", 1 / 3, Portrayal("a bus", "bus"), None)
