"""The benchmark runner: one cheap figure end to end, and the result structure. No timing asserts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import percentile, row, spread_row
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
    heap = [r for r in fig["rows"] if r["metric"].endswith("heap per tab")]
    assert heap and all("controls in a tab's page: app " in r["note"] for r in heap)
    per_control = [r for r in fig["rows"] if "x 0 rows: heap per control" in r["metric"]]
    assert per_control, "the empty page's heap is explained per control"
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
    r = row("x", 70.0, 100.0, unit="MB/s", baseline_name="b", target_min_ratio=0.8)
    assert r["met"] is False and r["target"] == ">= 0.8x baseline"
    r = spread_row("x", [90.0, 70.0, 95.0], [100.0, 100.0, 100.0], unit="MB/s",
                   baseline_name="b", target_min_ratio=0.8)
    assert r["ratio"] == pytest.approx(0.9) and r["met"] is True
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
    lan, relayed, signed, unsigned, *sync_bytes = figures["sync"]["rows"]
    # the 1 s target is for 10,000 messages: a quick run of 1,000 must not claim it is met
    assert "two processes" in lan["metric"] and lan["n"] == 1000 and lan["target"] == ""
    assert "serving peer / newcomer" in lan["note"]
    # beside the origin's own catch-up, the one whose every signature the newcomer checks
    assert "every signature checked" in relayed["metric"] and relayed["n"] == 1000
    assert "serving peer / newcomer" in relayed["note"]
    assert "served by their origin" in signed["metric"] and "one process" in signed["metric"]
    assert "unsigned" in unsigned["metric"] and unsigned["n"] == signed["n"] == lan["n"] == 1000
    assert [b["unit"] for b in sync_bytes] == ["KiB", "KiB"] and sync_bytes[0]["n"] == 1000
    assert sync_bytes[0]["value"] > sync_bytes[1]["value"]  # the signatures travel too


def _check_recovery(throughput: dict) -> None:
    """After each capacity search the next latency repetition waits for a quiet cluster: how long
    the receivers took to store everything is reported (raw websockets store nothing)."""
    cap = throughput["capacity"]
    for side in cap.values():
        rec = side["recovery_s"]
        assert len(rec) == len(side["per_repetition"])
        assert all(r is None or r >= 0 for r in rec)
    assert all(r is not None and r < 1 for r in cap["raw websockets"]["recovery_s"])
    assert any("stored every message" in n for n in throughput["notes"])


def test_quick_delivery_and_throughput_report_spread_for_app_and_baseline(tmp_path):
    """Capacity and latency are repeated in interleaved pairs and reported as min/median/max for
    both sides; the baseline's capacity is a real search, not a first step lost to noise; the
    per-message breakdown comes from the real code paths (one signature per message, and no
    verification: each receiver has it from its origin's own connection)."""
    out = tmp_path / "results.json"
    res = run_bench("--quick", "--only", "delivery,throughput", "--out", str(out), timeout=240)
    assert res.returncode == 0, res.stderr
    figures = json.loads(out.read_text())["figures"]
    assert list(figures) == ["delivery", "throughput"]
    for fig in figures.values():
        assert fig["status"] == "ok"
        assert len(fig["loadavg"]["per_repetition"]) >= 3
        for r in fig["rows"]:
            assert ROW_KEYS <= set(r)
    spread_rows = [r for fig in figures.values() for r in fig["rows"] if "value_spread" in r]
    assert len(spread_rows) >= 6
    for r in spread_rows:
        assert r["value_spread"]["reps"] == r["baseline_spread"]["reps"], r["metric"]
        if "at that capacity" not in r["metric"]:  # that one only where both kept up
            assert r["value_spread"]["reps"] >= 3, r["metric"]
        for key in ("value_spread", "baseline_spread", "ratio_spread"):
            sp = r[key]
            if sp["reps"]:  # a ratio needs a non-zero baseline (a capacity can be 0)
                assert sp["min"] <= sp["median"] <= sp["max"]
        assert r["value"] == pytest.approx(r["value_spread"]["median"])
        assert r["baseline"] == pytest.approx(r["baseline_spread"]["median"])
        if r in figures["delivery"]["rows"]:  # latencies: every repetition gives a ratio
            assert r["ratio_spread"]["reps"] == r["value_spread"]["reps"]
            assert r["ratio"] == pytest.approx(r["ratio_spread"]["median"])

    cap = figures["throughput"]["capacity"]
    _check_recovery(figures["throughput"])
    assert set(cap) == {"app", "raw websockets"}
    for side in cap.values():
        assert len(side["per_repetition"]) >= 3 and all(c > 0 for c in side["per_repetition"])
        for steps in side["steps"]:
            assert {s["phase"] for s in steps} == {"probe", "sustained"}
            for s in steps:
                assert s["sent"] >= 10 and 0 <= s["in_time_fraction"] <= 1
    raw = cap["raw websockets"]
    # the old figure stopped at the first step on a 0.4 ms wobble: the baseline must get past it
    first_rate = raw["steps"][0][0]["rate"]
    assert not all(raw["first_step_failed"])
    assert any(s["ok"] and s["rate"] > first_rate for steps in raw["steps"] for s in steps)
    assert raw["spread"]["median"] > first_rate
    capacity_row = figures["throughput"]["rows"][0]
    assert capacity_row["unit"] == "msg/s" and capacity_row["baseline_spread"]["min"] > 0

    bd = figures["delivery"]["breakdown"]
    assert bd["not_wrapped"] == []  # every target still exists where the breakdown looks for it
    calls = {p["part"]: p["calls_per_msg"] for p in bd["parts"]}
    assert calls["Ed25519 sign (sender)"] >= 1
    # the four receivers get it on its origin's own connection, which vouches for it: no check
    assert calls.get("Ed25519 verify (receivers)", 0) == 0
    assert calls["TLS encrypt"] > 0 and calls["JSON decode"] > 0
    assert calls["hub acceptance (dedupe, clock, queue for store)"] >= 4
    assert {"signatures: Ed25519 sign + verify", "TLS encrypt / decrypt",
            "SQLite on the event loop (store, signature book)"} <= set(bd["groups"])
    for g in bd["groups"].values():
        assert g["us_per_msg"] >= 0 and g["cpu_us_per_msg"] >= 0
    assert "Where one message's delivery time goes" in res.stdout
    assert "(min–max)" in res.stdout


def test_merge_keeps_other_figures_and_records_the_run():
    from bench.common import merge_results

    old = {"schema": 1, "quick": False, "when": "t0", "machine": {"commit": "a"},
           "figures": {"fanout": {"status": "ok", "rows": [1]}, "delivery": {"rows": [2]}}}
    new = {"schema": 1, "quick": False, "when": "t1", "machine": {"commit": "b"},
           "loadavg_1min": [8.0, 9.0], "figures": {"delivery": {"status": "ok", "rows": [3]}}}
    merged = merge_results(old, new)
    assert merged["figures"]["fanout"] == old["figures"]["fanout"]
    assert merged["figures"]["delivery"]["rows"] == [3]
    assert merged["figures"]["delivery"]["run"] == {"when": "t1", "commit": "b",
                                                   "loadavg_1min": [8.0, 9.0]}
    assert merged["when"] == "t0" and merged["merged_runs"][0]["figures"] == ["delivery"]
    with pytest.raises(ValueError):
        merge_results(old, {**new, "quick": True})


def test_quick_plan_is_a_small_smoke_run_of_every_figure():
    """Quick mode keeps its minute by plan, not by luck: every module runs in exactly one lane,
    each with a handful of samples and no long fixed waits (no timing is measured here)."""
    from bench import (
        allday,
        browsers,
        delivery,
        fanout,
        files_links,
        history,
        lan,
        scaleout,
        sessions,
        startup,
        static_site,
    )
    from bench.__main__ import QUICK_LANES, RUNNERS

    laned = [m for lane in QUICK_LANES for m in lane]
    assert sorted(laned) == sorted(m for m, _ in RUNNERS)  # each module once, none left out
    assert delivery.QUICK.reps == 3 and delivery.QUICK.latency_n <= 20
    assert delivery.QUICK.window_s <= 0.5 and delivery.QUICK.drain_s <= 1
    assert delivery.QUICK.refine == 0 and not delivery.QUICK.what_if
    assert delivery.QUICK.flood_s is not None and delivery.QUICK.flood_s <= 1
    configs, reps = fanout.configs_for(True)
    assert reps <= 3 and sum(r * n for r, n in configs) <= 500 and max(n for _, n in configs) <= 2
    assert any(r == 0 for r, _ in configs) and any(r > 0 for r, _ in configs)  # flatness row
    assert lan.quick_plan(True)["n_clean"] <= 3 and lan.quick_plan(True)["n_netloss"] == 0
    assert set(lan.quick_plan(True)["methods"]) == {"eof", "sigterm", "sigkill"}
    assert startup.quick_plan(True) == {"n": 1, "warm_up": False, "idle_s": 0.5}
    assert max(sessions.quick_plan(True)["counts"]) <= 10 and sessions.quick_plan(True)["grace"] <= 1
    assert static_site.quick_plan(True)["runs"] == 1
    assert allday.quick_plan(True)["tabs"] * allday.quick_plan(True)["rows"] <= 1000
    assert allday.quick_plan(True)["messages"] <= 60
    assert history.quick_plan(True)["n_search"] <= 10_000
    assert browsers.quick_plan(True) == {"receivers": 2, "messages": 2}
    assert scaleout.quick_plan(True) == {"tabs": 5, "messages": 3}
    shaped = files_links.quick_plan(True)  # figure 12 on shaped links: one tiny row set
    assert len(shaped.rates) == 1 and shaped.pair_mb <= 8 and shaped.rounds == 1
    assert shaped.fan_mb == 0 and shaped.pings <= 10
    # and the full run is left as it was
    assert delivery.FULL.latency_n == 200 and fanout.configs_for(False)[1] == 20
    assert lan.quick_plan(False)["n_clean"] == 20 and startup.quick_plan(False)["n"] == 5
    assert sessions.quick_plan(False)["counts"] == [0, 10, 100, 500]
    assert static_site.quick_plan(False)["runs"] == 3
    assert browsers.quick_plan(False) == {"receivers": 5, "messages": 20}
    assert scaleout.quick_plan(False) == {"tabs": 100, "messages": 20}
    full = files_links.quick_plan(False)
    assert set(full.rates) == {1000, 200} and full.pair_mb == 200 and full.fan_mb == 100
    assert full.rounds >= 3


def test_the_files_floor_measures_the_designs_own_work_and_bounds_from_below():
    """Figure 12's floor: real TLS over loopback, real hashing and writing, each cost positive;
    the pair can never beat one core decrypting its one stream, and four receivers cost four
    copies of every kind of work spread over the cores."""
    from bench import files_floor as F

    per = F.measure(rounds=1)
    for cost in (per.encrypt, per.decrypt, per.sha256, per.write, per.read):
        assert 0 < cost < 1  # seconds per MB: a real figure, not zero and not a hang
    assert per.receiver() == pytest.approx(per.decrypt + 2 * per.sha256 + per.write)
    assert per.sender() == pytest.approx(per.read + per.encrypt)
    total = per.sender() + per.receiver()
    assert F.pair_seconds(per, 200, 2) == pytest.approx(max(total * 100, per.decrypt * 200))
    assert F.pair_seconds(per, 200, 64) == pytest.approx(per.decrypt * 200)  # many cores: one stream
    assert F.swarm_seconds(per, 100, 4, 2) == pytest.approx(4 * F.swarm_seconds(per, 100, 1, 2))
    assert F.cores() >= 1
