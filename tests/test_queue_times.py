"""benchmarks/queue_times.py: per-experiment wall time from a queue-status log (no dvc)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("queue_times", ROOT / "benchmarks" / "queue_times.py")
qt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(qt)


def test_spans_time_each_experiment_from_running_to_its_end_across_midnight():
    log = ["23:58:00 a Queued", "23:58:00 b Queued", "23:59:00 a Running", "00:04:30 a Success",
           "00:04:30 b Running", "00:10:00 b Failed", "00:10:00 other Success"]
    s = qt.spans(log)
    assert s["a"] == (60.0, 390.0, "Success")
    assert s["b"] == (390.0, 720.0, "Failed")
    assert s["other"] == (None, 720.0, "Success")  # never seen running: not timed
    assert set(qt.spans(log, prefix="a")) == {"a"}


def test_summary_names_the_total_and_a_bad_line(tmp_path):
    p = tmp_path / "log"
    p.write_text("10:00:00 a Running\n10:05:00 a Success\n10:05:00 b Running\n")
    text = qt.summary(p, "")
    assert "| a | 0.0 | 5.0 | Success |" in text and "| b | 5.0 | – | Running |" in text
    assert "1 of 2 ended; first Running to last end: 5.0 min" in text
    with pytest.raises(ValueError, match="line 2"):
        qt.spans(["10:00:00 a Running", "garbage"])
