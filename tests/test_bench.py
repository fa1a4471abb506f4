"""The benchmark runner: one cheap figure end to end, and the result structure. No timing asserts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import percentile, row
from tests.timing import scaled

ROOT = Path(__file__).resolve().parent.parent
ROW_KEYS = {"metric", "unit", "value", "baseline", "baseline_name", "ratio", "n", "target", "met"}


def run_bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=scaled(timeout), check=False,
    )


def test_quick_run_of_one_figure_writes_results_with_ratios(tmp_path):
    out = tmp_path / "results.json"
    res = run_bench("--quick", "--only", "fanout", "--out", str(out))
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    assert data["schema"] == 1 and data["quick"] is True
    assert {"cpu", "cores", "os", "python", "commit"} <= set(data["machine"])
    assert list(data["figures"]) == ["fanout"]
    fig = data["figures"]["fanout"]
    assert fig["status"] == "ok" and fig["title"]
    assert fig["rows"]
    for r in fig["rows"]:
        assert ROW_KEYS <= set(r)
        assert r["value"] is not None and r["baseline"]
        assert r["ratio"] == pytest.approx(r["value"] / r["baseline"])
    assert "| figure | value | baseline (same run) | ratio |" in res.stdout


def test_unknown_figure_is_refused():
    res = run_bench("--only", "nonsense")
    assert res.returncode == 2
    assert "unknown figure" in res.stderr


def test_row_ratio_and_targets():
    r = row("x", 0.2, 0.1, unit="s", baseline_name="b", target_max=0.3)
    assert r["ratio"] == pytest.approx(2.0) and r["met"] is True
    r = row("x", 0.4, 0.1, unit="s", baseline_name="b", target_max_ratio=3)
    assert r["ratio"] == pytest.approx(4.0) and r["met"] is False
    r = row("x", 1.0, None, unit="s", baseline_name="b")
    assert r["ratio"] is None and r["met"] is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 100) == 2.0


def test_quick_history_figures_measure_against_plain_sqlite(tmp_path):
    out = tmp_path / "results.json"
    res = run_bench("--quick", "--only", "sync,search,insert", "--out", str(out), timeout=180)
    assert res.returncode == 0, res.stderr
    figures = json.loads(out.read_text())["figures"]
    assert list(figures) == ["sync", "search", "insert"]
    for fig in figures.values():
        assert fig["status"] == "ok" and fig["rows"]
        for r in fig["rows"]:
            assert r["value"] > 0 and r["baseline"] > 0
            assert r["ratio"] == pytest.approx(r["value"] / r["baseline"])
    sync_bytes = figures["sync"]["rows"][1]
    assert sync_bytes["unit"] == "KiB" and sync_bytes["n"] == 1000
