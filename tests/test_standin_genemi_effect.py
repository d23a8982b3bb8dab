"""benchmarks/standin_genemi_effect.py runs the stage scripts itself, outside DVC: its commands against
dvc.yaml's."""

from __future__ import annotations

import benchmark_module


def test_the_genemi_benchmark_trains_its_base_on_what_the_pipeline_base_stage_reads():
    """benchmarks/standin_genemi_effect.py runs the stage scripts itself: its base must be the pipeline's."""
    import re
    from pathlib import Path

    import yaml

    root = Path(__file__).parents[1]
    genemi_effect = benchmark_module.load("standin_genemi_effect")
    cmd = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["base"]["cmd"]
    assert re.search(r"--train (\S+)", cmd).group(1) == genemi_effect.BASE_TRAIN
