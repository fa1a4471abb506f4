"""A short fuzz run as a test: 2000 hostile inputs at decode_frame, the secured handshake and
parse_txt (bench/fuzz.py; the long run's numbers are in docs/security.md)."""

from __future__ import annotations

from bench import fuzz


def test_short_fuzz_run_raises_only_validation_errors_and_changes_nothing():
    stats = fuzz.run(2000, seed=7, quiet=True, generated_max=40)
    assert fuzz.check(stats) == [], stats["crashes"][:3]
    assert stats["inputs"] == 2000
    # Every target was reached, and the handshake refused every fuzzed peer.
    assert set(stats["expected_errors"]) | set(stats["accepted"]) == {"frame", "handshake", "txt"}
    assert sum(stats["handshake_close_codes"].values()) == stats["accepted"]["handshake"]
    assert stats["store_unchanged"]


def test_corpus_files_are_small():
    files = list(fuzz.CORPUS.glob("*"))
    assert files and all(f.stat().st_size < 8192 for f in files)
