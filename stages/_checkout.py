"""Imported first by every stage script: this checkout's ``genemi`` before any installed copy.

``dvc exp run`` (and its queue) runs stages in temporary copies of the repository, while the editable
install (or a PYTHONPATH) points at the main workspace: without this, a queued experiment would import
the workspace's code, not the code it was queued with, and still exit 0.
"""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if sys.path[:1] != [_ROOT]:
    sys.path.insert(0, _ROOT)
