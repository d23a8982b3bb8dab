"""The objects the miner drives (:class:`Chain`): any implementation of the mining interfaces will do, the
pretrained models, the tiny random ones, the synthetic world's exact ones, or a test's fakes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from genemi.mining.lexicon import Lexicon
from genemi.mining.portrayals import LexiconPortrayer
from genemi.mining.rewrite import CaptionRewriter


@dataclass
class Chain:
    """The objects the miner drives; any implementation of the interfaces will do."""

    tagger: Any
    grounder: Any
    segmenter: Any
    editor: Any
    scorer: Any
    portrayer: Any = field(default_factory=LexiconPortrayer)
    rewriter: CaptionRewriter = field(default_factory=CaptionRewriter)
    parse: Any = None  # text -> stanza Document, for rule-based negatives; None = none
    lexicon: Lexicon | None = None  # the words edits are drawn from and judged by; None = the packaged one
