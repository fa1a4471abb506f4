"""fletchat.sqlbatch: many rows in and out of SQLite in few steps (the GIL, docs/performance.md).

What is checked here is what can fail without a clock: the rows, their order and values, and how
many statements SQLite runs (each statement is one hand-over of the GIL; the time it saves is
measured in bench figure 9, never asserted)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from fletchat import sqlbatch
from fletchat.clock import Stamp
from fletchat.model import Message
from fletchat.sqlbatch import ROWS_PER_STATEMENT, all_rows, insert_rows, json_reads_exact
from fletchat.store import Record, Store


@pytest.fixture
def con():
    c = sqlite3.connect(":memory:")
    c.execute("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER, x REAL, s TEXT)")
    yield c
    c.close()


def _statements(c: sqlite3.Connection) -> list[str]:
    seen: list[str] = []
    c.set_trace_callback(  # the statements SQL runs (not BEGIN/COMMIT, not FTS5's own)
        lambda sql: None if sql.startswith(("--", "BEGIN", "COMMIT")) else seen.append(sql))
    return seen


def test_insert_rows_writes_every_row_in_chunks_of_the_statement_size(con):
    rows = [(f"k{i}", i, i / 7, None) for i in range(ROWS_PER_STATEMENT * 2 + 3)]
    seen = _statements(con)
    insert_rows(con, "INSERT INTO t (k, n, x, s) VALUES", rows)
    assert len(seen) == 3  # two full chunks and the rest, not one statement per row
    assert con.execute("SELECT k, n, x, s FROM t ORDER BY n").fetchall() == rows


def test_insert_rows_keeps_under_sqlites_limit_on_bound_parameters(con):
    con.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 10)  # as old SQLite builds (999)
    rows = [(f"k{i}", i, 0.5, "a") for i in range(7)]
    seen = _statements(con)
    insert_rows(con, "INSERT INTO t (k, n, x, s) VALUES", rows)
    assert len(seen) == 4  # 10 // 4 columns = 2 rows per statement
    assert con.execute("SELECT count(*) FROM t").fetchone() == (7,)


def test_insert_rows_passes_the_tail_and_fails_like_executemany(con):
    insert_rows(con, "INSERT INTO t (k, n, x, s) VALUES", [("a", 1, 0.0, "x")])
    insert_rows(con, "INSERT INTO t (k, n, x, s) VALUES", [("a", 5, 0.0, "y"), ("b", 2, 0.0, "z")],
                "ON CONFLICT(k) DO UPDATE SET n = max(n, excluded.n)")
    assert con.execute("SELECT k, n, s FROM t ORDER BY k").fetchall() == [
        ("a", 5, "x"), ("b", 2, "z")]
    with pytest.raises(sqlite3.IntegrityError):
        insert_rows(con, "INSERT INTO t (k, n, x, s) VALUES", [("c", 1, 0.0, ""), ("a", 1, 0.0, "")])
    insert_rows(con, "INSERT INTO t (k, n, x, s) VALUES", [])  # nothing to do: no statement


def test_all_rows_reads_in_order_in_one_statement_with_exact_values(con):
    now = time.time()
    rows = [(f"k{i:03d}", i, now + i / 1e6, text) for i, text in enumerate(
        ['plain', 'quote " and \\ backslash', "new\nline", "émoji 🎉", "", None] * 40)]
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
    seen = _statements(con)
    got = all_rows(con, "SELECT k, n, x, s FROM t WHERE n >= ? ORDER BY k DESC LIMIT ?", (3, 100),
                   ("k", "n", "x", "s"), reals=("x",))
    assert len(seen) == 1
    want = sorted((r for r in rows if r[1] >= 3), reverse=True)[:100]
    assert [(k, n, float(x), s) for k, n, x, s in got] == want  # REALs to the last bit
    assert all_rows(con, "SELECT k FROM t WHERE n < 0", (), ("k",)) == []


def test_this_sqlite_hands_rows_over_as_json_exactly():
    assert json_reads_exact()  # Python 3.11's SQLite 3.40 here; else every read is row by row


def test_all_rows_reads_row_by_row_where_sqlite_cannot_print_doubles_exactly(con, monkeypatch):
    rows = [(f"k{i}", i, 1796326600.692 + i, "t") for i in range(5)]
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
    monkeypatch.setattr(sqlbatch, "json_reads_exact", lambda: False)
    seen = _statements(con)
    got = all_rows(con, "SELECT k, n, x, s FROM t ORDER BY n", (), ("k", "n", "x", "s"), ("x",))
    assert [tuple(r) for r in got] == rows
    assert "json_group_array" not in seen[0]


def _records(n: int, origin: str = "o") -> list[Record]:
    out = []
    for i in range(n):
        m = Message.chat("Ada", f"message {i}", origin)
        stamp = Stamp(1_700_000_000_000 + i, 0, origin)
        out.append(Record(Message(m.id, m.kind, m.author, m.origin, m.text, m.ts, m.channel,
                                  stamp.encode(), i + 1), stamp, i + 1, verified=True))
    return out


def test_the_store_writes_a_batch_and_reads_catch_up_in_a_few_statements(tmp_path: Path):
    store = Store.open(tmp_path / "h.db")
    try:
        recs = _records(500)
        seen = _statements(store._con)
        store.add_many(recs)
        written = len(seen)
        assert written <= 16, seen  # not one per row (500 rows, their index and counters)
        assert store.have_summary() == {"o": 500}
        seen.clear()
        caught = store.missing_for({"o": 100}, limit=1000)
        assert len(seen) <= 2, seen  # the origins, then their rows in one step
        assert [r.seq for r in caught] == list(range(101, 501))
        assert [r.msg for r in caught] == [r.msg for r in recs[100:]]
        assert all(r.verified for r in caught)
        page = store.recent("general", limit=50)
        assert [r.msg for r in page] == [r.msg for r in recs[-50:]]  # oldest first
        older = store.recent("general", limit=50, before=page[0].hlc)
        assert [r.msg for r in older] == [r.msg for r in recs[-100:-50]]
    finally:
        store.close()


def test_receipts_for_many_messages_mark_them_in_a_few_statements(tmp_path: Path):
    """A catch-up's receipts name thousands of ids, nearly all delivered long ago: the outbox is
    marked in a few statements per 500 ids (one per id handed the GIL over per id), and only
    the ones still waiting are reported, in the order given, their rows marked delivered."""
    store = Store.open(tmp_path / "h.db")
    try:
        store.add_many(_records(1200))  # peers' messages: never in the outbox
        own = [store.add_local(Message.chat("Me", f"mine {i}", "me"),
                               Stamp(1_800_000_000_000 + i, 0, "me")) for i in range(6)]
        store.mark_sent_many([own[0].msg.id, own[1].msg.id, "unknown"])
        assert [r.state.value for r in store.pending()][:3] == ["sent", "sent", "pending"]
        assert store.mark_delivered(own[5].msg.id)
        others = [r.msg.id for r in _records(0)] + [f"x{i}" for i in range(1200)]
        ids = others[:700] + [own[3].msg.id, own[5].msg.id, own[1].msg.id] + others[700:]
        ids.append(own[3].msg.id)  # named twice
        seen = _statements(store._con)
        done = store.mark_delivered_many(ids)
        assert len(seen) <= 9, len(seen)  # 3 chunks of 500: a look, two updates each
        assert done == [own[3].msg.id, own[1].msg.id]  # the undelivered ones, in order
        assert {r.msg.id for r in store.pending()} == {own[0].msg.id, own[2].msg.id,
                                                       own[4].msg.id}
        assert store.get(own[3].msg.id).state.value == "delivered"
        assert store.get(own[2].msg.id).state.value == "pending"
        assert store.mark_delivered_many(ids) == []
    finally:
        store.close()


def test_a_peers_summary_moves_its_cursors_in_one_statement(tmp_path: Path):
    """Every ``have`` (each link, every 20 s) moves one cursor per origin it names: one
    statement for all of them, cursors only forward, nonsense values skipped."""
    store = Store.open(tmp_path / "h.db")
    try:
        store.update_cursor("p", {f"o{i}": 10 for i in range(300)})
        seen = _statements(store._con)
        summary: dict[str, object] = {f"o{i}": 5 + i % 10 for i in range(300)}
        summary.update({"bad": -1, "worse": True, "new": 7})
        store.update_cursor("p", summary)  # type: ignore[arg-type]
        assert len(seen) == 1, seen
        want = {f"o{i}": max(10, 5 + i % 10) for i in range(300)} | {"new": 7}
        assert store.cursor("p") == want
    finally:
        store.close()


def test_the_stored_ids_are_loaded_at_open_in_one_step(tmp_path: Path, monkeypatch):
    """At open a thread loads every stored id into memory (the store's filter): the ids come to
    Python as one row however many there are (row by row, 100,000 ids beside a busy loop took
    5.8-10.5 s instead of 0.7-0.8 s, docs/performance.md), then the top seqs."""
    from fletchat import store as store_module
    from fletchat.idfilter import KnownIds

    store = Store.open(tmp_path / "h.db")
    recs = _records(1500)
    store.add_many(recs)
    store.close()
    real = store_module._read_connection
    fetched: list[object] = []  # each row handed to Python: one sqlite3_step, one GIL hand-over

    class Counted:
        def __init__(self, con: sqlite3.Connection) -> None:
            self.con = con

        def execute(self, sql: str, params: object = ()):
            rows = self.con.execute(sql, params)

            class Rows:
                def __iter__(self):
                    for r in rows:
                        fetched.append(r)
                        yield r

                def fetchone(self):
                    r = rows.fetchone()
                    fetched.append(r)
                    return r

            return Rows()

        def __getattr__(self, name: str):
            return getattr(self.con, name)

    monkeypatch.setattr(store_module, "_read_connection", lambda path: Counted(real(path)))
    known = KnownIds(4000)
    store_module._load_known(tmp_path / "h.db", known)
    assert known.ready
    assert len(fetched) <= 2, len(fetched)  # the ids as one JSON array, the one origin's top
    assert all(known.may_hold(r.msg.id, "elsewhere", 10**6) for r in recs)
    assert not known.may_hold("never-stored", "o", 1501)
