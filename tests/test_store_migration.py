"""The store migrates forward without loss: a history written by schema v1 (before "verified
beats unverified") opens as v2 with every row, outbox entry and catch-up number kept."""

from __future__ import annotations

import sqlite3

from fletchat.store import MIGRATIONS, SCHEMA_VERSION, Store, _statements


def v1_database(path) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    for stmt in _statements(MIGRATIONS[0]):
        con.execute(stmt)
    con.execute("PRAGMA user_version = 1")
    rows = [(f"own-{i}", "me", i, f"mine {i}", "pending" if i > 2 else "delivered")
            for i in range(1, 5)]
    rows += [(f"bob-{i}", "bob", i, f"bob says {i}", "delivered") for i in range(1, 4)]
    for n, (mid, origin, seq, text, state) in enumerate(rows):
        con.execute(
            "INSERT INTO messages (id, channel, origin, seq, hlc, kind, author, text, ts, "
            "received_at, state) VALUES (?, 'general', ?, ?, ?, 'chat', 'X', ?, 1.7e9, 1.7e9, ?)",
            (mid, origin, seq, f"018b{n:08x}.0000.{origin}", text, state))
    for i in range(1, 5):
        con.execute("INSERT INTO outbox (id, queued_at, delivered_at) VALUES (?, 1.7e9, ?)",
                    (f"own-{i}", 1.7e9 if i <= 2 else None))
    con.execute("INSERT INTO origins (origin, contiguous, max_seq) VALUES ('me', 4, 4), "
                "('bob', 3, 3)")
    con.close()


def test_a_v1_history_migrates_to_the_current_schema_without_loss(tmp_path) -> None:
    path = tmp_path / "history.db"
    v1_database(path)
    with Store.open(path) as store:
        assert store._con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.count() == 7
        assert [r.msg.text for r in store.recent(limit=10)] == (
            [f"mine {i}" for i in range(1, 5)] + [f"bob says {i}" for i in range(1, 4)])
        assert {r.msg.id for r in store.pending()} == {"own-3", "own-4"}
        # Own rows (in the outbox) count as verified; peers' rows wait for their signed copy.
        assert store.have_summary() == {"me": 4, "bob": 3}
        assert store.have_summary(keyed=lambda origin: True) == {"me": 4}
        assert store.get("own-1").verified and not store.get("bob-1").verified
        assert store.refusals() == {}
        assert store.mark_refused("own-3", "peer-b", "quota")
    with Store.open(path) as again:  # and it opens again as it is
        assert again.count() == 7 and again.refusals() == {"own-3": ("peer-b", "quota")}
