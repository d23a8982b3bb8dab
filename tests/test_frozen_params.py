"""The tests read tests/fixtures/params.yaml; only the checks of the shipped files read params.yaml."""

import re
from pathlib import Path

import frozen_params

TESTS = Path(__file__).resolve().parent
# a read of the repository's params.yaml: ROOT / "params.yaml", F.ROOT) / "params.yaml", open("params.yaml")
LIVE = re.compile(r"""(ROOT\)? / "params\.yaml"|\(\s*["']params\.yaml["']\s*[,)])""")
# the tests whose job is the shipped files: the whole pipeline spec (dvc.yaml <-> params.yaml, offline
# defaults), the shipped ranges (test_bad_inputs), the download stages' params keys (test_download) and
# the claims sweep's reference values, which are the committed params every queued run starts from
SHIPPED_CHECKS = {"test_bad_inputs.py": 1, "test_download.py": 1, "test_claims_sweep.py": 1}
WHOLE_FILE = "test_pipeline_spec.py"


def test_only_the_shipped_file_checks_read_the_live_params():
    reads = {}
    for path in sorted(TESTS.glob("*.py")):
        n = len(LIVE.findall(path.read_text()))
        if n and path.name not in (Path(__file__).name, WHOLE_FILE):
            reads[path.name] = n
    assert LIVE.search((TESTS / WHOLE_FILE).read_text())  # the pattern still finds reads
    assert reads == SHIPPED_CHECKS, (
        "read the frozen test params (tests/frozen_params.py) instead of the live params.yaml, which "
        f"`dvc exp run -S` rewrites; live reads per file: {reads}"
    )


def test_the_frozen_copy_is_a_valid_params_file():
    p = frozen_params.load()  # the schema still matches: update the copy when a key is added or renamed
    assert p.data.source == "synthetic" and p.model.pretrained == ""
    assert frozen_params.raw() is not frozen_params.raw()  # each caller may mutate its own copy
