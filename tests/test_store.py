"""The SQLite store, on real files: history, ordering, catch-up, search, outbox, damage, crashes."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from fletchat.clock import HLC, Stamp
from fletchat.model import Message, new_id
from fletchat.store import (
    APPLICATION_ID,
    MARK_END,
    MARK_START,
    SCHEMA_VERSION,
    Record,
    Store,
    StoreError,
    StoreWriter,
    fts_query,
)
from tests.timing import scaled

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_700_000_000_000


class Wall:
    def __init__(self) -> None:
        self.ms = T0

    def __call__(self) -> int:
        self.ms += 1
        return self.ms


def chat(text: str, origin: str = "alice", author: str = "Alice", channel: str = "general",
         mid: str | None = None) -> Message:
    return Message(mid or new_id(), "chat", author, origin, text, T0 / 1000, channel)


def history(origins: dict[str, int], texts: bool = False) -> list[Record]:
    """Records as their origins would have written them: seq 1..n per origin, HLC stamps."""
    out = []
    wall = Wall()
    for origin, n in origins.items():
        clock = HLC(origin, wall)
        for seq in range(1, n + 1):
            out.append(Record(chat(f"{origin} says {seq}", origin), clock.now(), seq))
    return out


def open_store(tmp_path: Path, name: str = "history.db", **kw: object) -> Store:
    return Store.open(tmp_path / name, **kw)  # type: ignore[arg-type]


def ids(records: list[Record]) -> list[str]:
    return [r.msg.id for r in records]


# ---- basics ------------------------------------------------------------------------------------
def test_new_store_is_marked_as_ours_in_wal_mode(tmp_path: Path) -> None:
    open_store(tmp_path).close()
    con = sqlite3.connect(tmp_path / "history.db")
    assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_restart_shows_the_same_history(tmp_path: Path) -> None:
    clock = HLC("me", Wall())
    with open_store(tmp_path) as store:
        sent = [store.add_local(chat(f"line {i}", "me"), clock.now()) for i in range(5)]
        store.add(chat("from bob", "bob"), Stamp(T0 + 100, 0, "bob"), 1)
        store.create_channel("random")
        before = store.recent("general", 100)
    with open_store(tmp_path) as store:
        after = store.recent("general", 100)
        assert after == before
        assert ids(after)[:5] == ids(sent)
        assert store.channels() == ["general", "random"]
        assert store.next_seq("me") == 6
        assert store.last_hlc() == Stamp(T0 + 100, 0, "bob")
        # a clock seeded from the store keeps going forward even if the wall clock went back
        seeded = HLC("me", lambda: T0 - 10_000, last=store.last_hlc())
        assert seeded.now() > after[-1].hlc


def test_duplicate_ids_are_ignored(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        msg = chat("once")
        stamp = Stamp(T0, 0, "alice")
        assert store.add(msg, stamp, 1) is True
        assert store.add(msg, stamp, 1) is False
        assert store.add(msg, Stamp(T0 + 5, 0, "alice"), None) is False  # same id, other fields
        assert store.add_many([Record(msg, stamp, 1), Record(msg, stamp, 1)]) == [False, False]
        fresh = chat("twice in one batch")
        assert store.add_many([Record(fresh, stamp, 2), Record(fresh, stamp, 2)]) == [True, False]
        assert store.count() == 2
        with pytest.raises(StoreError, match="already stored"):
            store.add_local(msg, stamp)


def test_a_reused_origin_seq_with_another_id_is_refused(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        assert store.add(chat("first"), Stamp(T0, 0, "alice"), 1)
        assert not store.add(chat("impostor"), Stamp(T0, 1, "alice"), 1)
        assert [r.msg.text for r in store.recent()] == ["first"]


def test_hlc_order_is_the_same_whatever_the_arrival_order(tmp_path: Path) -> None:
    records = history({"alice": 30, "bob": 30, "carol": 30})
    a, b = open_store(tmp_path, "a.db"), open_store(tmp_path, "b.db")
    shuffled = records[:]
    random.Random(7).shuffle(shuffled)
    a.add_many(records)
    for rec in shuffled:
        b.add(rec.msg, rec.hlc, rec.seq)
    assert ids(a.recent(limit=1000)) == ids(b.recent(limit=1000))
    assert [r.hlc for r in a.recent(limit=1000)] == sorted(r.hlc for r in records)
    a.close()
    b.close()


def test_paging_up_with_before(tmp_path: Path) -> None:
    records = history({"alice": 25})
    with open_store(tmp_path) as store:
        store.add_many(records)
        store.add(chat("other room", channel="random"), Stamp(T0 + 999, 0, "x"), None)
        pages = []
        page = store.recent("general", 10)
        while page:
            pages.append(page)
            page = store.recent("general", 10, before=page[0].hlc)
        assert [len(p) for p in pages] == [10, 10, 5]
        flat = [r for p in reversed(pages) for r in p]
        assert ids(flat) == ids(records)
        assert [r.msg.text for r in store.recent("random")] == ["other room"]
        assert store.channels() == ["general", "random"]


# ---- catch-up ----------------------------------------------------------------------------------
def pull(into: Store, source: Store, limit: int, max_batches: int | None = None) -> list[int]:
    """``into`` asks ``source`` for what it lacks, batch by batch. Returns the batch sizes."""
    sizes: list[int] = []
    summary = into.have_summary()
    after = None
    while max_batches is None or len(sizes) < max_batches:
        batch = source.missing_for(summary, limit, after)
        assert len(batch) <= limit
        sizes.append(len(batch))
        into.add_many(batch)
        if len(batch) < limit:
            break
        after = (batch[-1].msg.origin, batch[-1].seq)  # type: ignore[assignment]
    return sizes


def test_summary_counts_only_contiguous_seqs(tmp_path: Path) -> None:
    records = history({"alice": 5, "bob": 3})
    with open_store(tmp_path) as store:
        store.add_many([r for r in records if not (r.msg.origin == "alice" and r.seq == 3)])
        assert store.have_summary() == {"alice": 2, "bob": 3}
        store.add_many([r for r in records if r.msg.origin == "alice" and r.seq == 3])
        assert store.have_summary() == {"alice": 5, "bob": 3}


def test_summary_exchange_converges_in_bounded_batches(tmp_path: Path) -> None:
    everything = history({"alice": 40, "bob": 25, "carol": 12, "dave": 3})
    rng = random.Random(3)
    a, b = open_store(tmp_path, "a.db"), open_store(tmp_path, "b.db")
    # each side holds a random part (with gaps), some records both; together they hold everything
    for rec in everything:
        side = rng.choice(["a", "b", "both"])
        if side in ("a", "both"):
            a.add(rec.msg, rec.hlc, rec.seq)
        if side in ("b", "both"):
            b.add(rec.msg, rec.hlc, rec.seq)
    assert a.count() < len(everything) and b.count() < len(everything)
    sizes_ab = pull(a, b, limit=7)
    sizes_ba = pull(b, a, limit=7)
    assert max(sizes_ab + sizes_ba) <= 7
    assert a.count() == b.count() == len(everything)
    assert ids(a.recent(limit=1000)) == ids(b.recent(limit=1000)) == ids(everything)
    assert a.have_summary() == b.have_summary() == {"alice": 40, "bob": 25, "carol": 12, "dave": 3}
    # nothing left to exchange
    assert b.missing_for(a.have_summary(), 7) == [] and a.missing_for(b.have_summary(), 7) == []
    a.close()
    b.close()


def test_catch_up_is_resumable_after_an_interruption(tmp_path: Path) -> None:
    everything = history({"alice": 30, "bob": 30})
    source = open_store(tmp_path, "source.db")
    source.add_many(everything)
    target = open_store(tmp_path, "target.db")
    assert pull(target, source, limit=10, max_batches=2) == [10, 10]  # connection drops here
    target.close()

    target = open_store(tmp_path, "target.db")  # app restarted, peer reconnects
    assert target.have_summary() == {"alice": 20}
    sizes = pull(target, source, limit=10)
    assert sum(sizes) == 40  # only what was missing, not all 60 again
    assert target.have_summary() == {"alice": 30, "bob": 30}
    source.close()
    target.close()


def test_a_gap_nobody_can_fill_does_not_stall_the_exchange(tmp_path: Path) -> None:
    everything = history({"alice": 20, "bob": 5})
    holey = [r for r in everything if not (r.msg.origin == "alice" and r.seq == 2)]
    a, b = open_store(tmp_path, "a.db"), open_store(tmp_path, "b.db")
    a.add_many(holey)
    sizes = pull(b, a, limit=4)
    assert sum(sizes) == len(holey)
    sizes = pull(b, a, limit=4)  # alice 3..20 are offered again (b's summary stops at 1) ...
    assert sum(sizes) == 18  # ... but the pass still ends and reaches bob's messages
    assert b.count() == a.count()
    a.close()
    b.close()


def test_missing_for_tolerates_a_hostile_summary(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        store.add_many(history({"alice": 3}))
        bad = {"alice": -5, "bob": "x", "carol": None, "dave": True}
        assert len(store.missing_for(bad, 10)) == 3  # type: ignore[arg-type]
        assert store.missing_for({"alice": 10**18}, 10) == []


def test_sync_cursors_only_move_forward(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        store.add_many(history({"alice": 8}))
        store.update_cursor("peer-1", {"alice": 5})
        store.update_cursor("peer-1", {"alice": 3, "bob": -1})
        assert store.cursor("peer-1") == {"alice": 5}
        assert store.cursor("peer-2") == {}
        assert [r.seq for r in store.missing_for(store.cursor("peer-1"), 10)] == [6, 7, 8]


# ---- outbox ------------------------------------------------------------------------------------
def test_outbox_holds_local_messages_until_delivered(tmp_path: Path) -> None:
    clock = HLC("me", Wall())
    with open_store(tmp_path) as store:
        written = [store.add_local(chat(f"offline {i}", "me"), clock.now()) for i in range(3)]
        assert [r.seq for r in written] == [1, 2, 3]
        assert ids(store.pending()) == ids(written)
        assert {r.state for r in store.pending()} == {"pending"}
        assert store.mark_sent(written[0].msg.id)
        assert store.get(written[0].msg.id).state == "sent"  # type: ignore[union-attr]
        assert store.mark_delivered(written[0].msg.id)
        assert not store.mark_delivered(written[0].msg.id)
        assert not store.mark_delivered("unknown")
    with open_store(tmp_path) as store:  # survives a restart
        assert ids(store.pending()) == ids(written[1:])
        assert store.get(written[0].msg.id).state == "delivered"  # type: ignore[union-attr]
        # own messages take part in catch-up like anyone else's
        assert store.have_summary() == {"me": 3}


# ---- search ------------------------------------------------------------------------------------
@pytest.fixture(params=[True, False], ids=["fts5", "like-fallback"])
def searchable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    store = open_store(tmp_path, fts=request.param)
    assert store.fts is request.param
    wall = Wall()
    texts = [
        ("Let's meet at the café tomorrow", "general"),
        ("Meeting notes are in the shared folder", "general"),
        ('He said "NEAR(a b)" AND OR * -- not syntax', "general"),
        ("Deploying tonight, keep the channel quiet", "ops"),
        ("the meetup was great", "ops"),
    ]
    clock = HLC("alice", wall)
    for i, (text, channel) in enumerate(texts, 1):
        store.add(chat(text, channel=channel), clock.now(), i)
    yield store
    store.close()


def test_search_matches_prefixes_with_highlights(searchable: Store) -> None:
    hits = searchable.search("meet")
    assert [h.record.msg.text for h in hits] == [
        "the meetup was great",
        "Meeting notes are in the shared folder",
        "Let's meet at the café tomorrow",
    ]  # newest first
    assert all(MARK_START in h.snippet and MARK_END in h.snippet for h in hits)
    assert f"{MARK_START}Meet" in hits[1].snippet
    assert [h.record.msg.text for h in searchable.search("meet", channel="ops")] == [
        "the meetup was great"
    ]
    both = searchable.search("shared MEET")
    assert [h.record.msg.channel for h in both] == ["general"] and len(both) == 1
    custom = searchable.search("deploy", marks=("[", "]"))
    assert custom[0].snippet.startswith("[Deploy")


@pytest.mark.parametrize(
    "query",
    ['"', '""', "'", 'meet"', "NEAR(", "NEAR(a b", "*", "meet*", "(", ")", "((meet", "a)",
     "AND", "OR NOT", "text:meet", "^meet", "-", "+", "{meet}", "\x00", "   ", "", "💥",
     "meet" * 500, " ".join(["a"] * 100), "NEAR(a b) AND \"", "col:*"],
)
def test_hostile_queries_do_not_raise(searchable: Store, query: str) -> None:
    hits = searchable.search(query)
    assert isinstance(hits, list)


def test_operators_are_searched_as_words(searchable: Store) -> None:
    hits = searchable.search('"NEAR(a')
    assert [h.record.msg.text for h in hits] == ['He said "NEAR(a b)" AND OR * -- not syntax']


def test_fts_query_quotes_every_term() -> None:
    assert fts_query('foo "bar" NEAR(x*') == '"foo"* "bar"* "NEAR"* "x"*'
    assert fts_query('"*()') is None


def test_fts_index_is_built_for_existing_history(tmp_path: Path) -> None:
    """A store first used without FTS5 (e.g. on a mobile build) gets its index when FTS5 appears."""
    with open_store(tmp_path, fts=False) as store:
        store.add(chat("written before the index existed"), Stamp(T0, 0, "alice"), 1)
    with open_store(tmp_path) as store:
        assert store.fts
        assert [h.record.msg.text for h in store.search("index")] == [
            "written before the index existed"
        ]
        store.add(chat("and an indexed one"), Stamp(T0, 1, "alice"), 2)
        assert len(store.search("ind")) == 2


# ---- damage ------------------------------------------------------------------------------------
def backups(tmp_path: Path, name: str) -> list[Path]:
    return sorted(p for p in tmp_path.iterdir() if p.name.startswith(f"{name}.bad-")
                  and not p.name.endswith(("-wal", "-shm")))


def test_random_bytes_raise_and_leave_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    junk = random.Random(5).randbytes(20_000)
    path.write_bytes(junk)
    with pytest.raises(StoreError, match="is not a SQLite database.*copied to"):
        Store.open(path)
    assert path.read_bytes() == junk  # not wiped
    (backup,) = backups(tmp_path, "history.db")
    assert backup.read_bytes() == junk


def test_a_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
    con.execute("INSERT INTO invoices (amount) VALUES (12.5)")
    con.commit()
    con.close()
    original = path.read_bytes()
    with pytest.raises(StoreError, match="belongs to another application"):
        Store.open(path)
    assert path.read_bytes() == original
    (backup,) = backups(tmp_path, "history.db")
    assert backup.read_bytes() == original


def test_a_damaged_database_of_ours_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    with Store.open(path) as store:
        store.add_many(history({"alice": 400}))
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode = DELETE")  # fold the WAL into the main file
    con.close()
    data = bytearray(path.read_bytes())
    page = 4096
    for i in range(2 * page, len(data), page):  # scribble over every page after the second
        data[i + 8 : i + 64] = random.Random(i).randbytes(56)
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="damaged"):
        Store.open(path)
    (backup,) = backups(tmp_path, "history.db")
    assert backup.read_bytes() == bytes(data)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    Store.open(path).close()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(StoreError, match="newer Flet Chat"):
        Store.open(path)
    assert len(backups(tmp_path, "history.db")) == 1


def test_a_newer_schema_still_in_the_write_ahead_log_is_refused(tmp_path: Path) -> None:
    """A newer version still running (or crashed) keeps its schema bump in the WAL beside the
    file; the check before opening must read it, not the main file alone."""
    path = tmp_path / "history.db"
    Store.open(path).close()
    newer = sqlite3.connect(path)
    try:
        newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        newer.execute("CREATE TABLE from_the_future (x)")
        assert (tmp_path / "history.db-wal").stat().st_size > 0  # the bump is only in the log
        with pytest.raises(StoreError, match="newer Flet Chat"):
            Store.open(path)
    finally:
        newer.close()


def test_an_empty_file_becomes_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    path.write_bytes(b"")
    with Store.open(path) as store:
        assert store.recent() == []
    assert backups(tmp_path, "history.db") == []


# ---- batched writes and crashes ----------------------------------------------------------------
def test_batched_writer_handles_a_large_burst(tmp_path: Path) -> None:
    """Sanity, not timing: 10k messages through the writer all land and are searchable."""
    committed: list[int] = []
    with open_store(tmp_path) as store:
        writer = StoreWriter(store, batch_size=500, interval=0.02,
                             on_commit=lambda recs, res: committed.append(sum(res)))
        clock = HLC("alice", Wall())
        for i in range(10_000):
            writer.submit(Record(chat(f"burst message number{i}"), clock.now(), i + 1))
        assert writer.flush(timeout=scaled(60))
        writer.close()
        assert sum(committed) == 10_000
        assert max(committed) <= 500
        assert store.count() == 10_000
        assert store.have_summary() == {"alice": 10_000}
        assert [h.record.msg.text for h in store.search("number9999")] == [
            "burst message number9999"
        ]
        assert len(store.search("burst", limit=1000)) == 1000


def test_writer_flushes_on_its_timer_and_on_close(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        writer = StoreWriter(store, batch_size=1000, interval=0.01)
        writer.submit(Record(chat("soon"), Stamp(T0, 0, "alice"), 1))
        assert writer.flush(timeout=scaled(10))
        assert store.count() == 1
        writer.submit(Record(chat("at close"), Stamp(T0, 1, "alice"), 2))
        writer.close()
        assert store.count() == 2
        with pytest.raises(StoreError):
            writer.submit(Record(chat("too late"), Stamp(T0, 2, "alice"), 3))


_KILLED_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from fletchat.clock import HLC
    from fletchat.model import Message, new_id
    from fletchat.store import Record, Store, StoreWriter

    store = Store.open(sys.argv[1])
    clock = HLC("writer")
    mode = sys.argv[2]

    def ack(records, results):
        for rec in records:
            print(rec.msg.id, flush=True)

    writer = StoreWriter(store, batch_size=50, interval=0.005, on_commit=ack)
    i = 0
    while True:
        i += 1
        msg = Message(new_id(), "chat", "W", "writer", f"message {{i}}", 1.0)
        if mode == "direct":
            store.add(msg, clock.now(), i)
            print(msg.id, flush=True)
        else:
            writer.submit(Record(msg, clock.now(), i))
    """
)


@pytest.mark.parametrize("mode", ["direct", "batched"])
def test_every_acknowledged_message_survives_sigkill(tmp_path: Path, mode: str) -> None:
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("needs SIGKILL")
    path = tmp_path / "history.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER.format(root=str(ROOT)), str(path), mode],
        stdout=subprocess.PIPE, text=True,
    )
    acked: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            acked.append(line.strip())
            if len(acked) >= 1500:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(scaled(10))
    # whatever else the pipe still held was acknowledged too
    rest = proc.stdout.read() if proc.stdout is not None else ""
    acked.extend(line.strip() for line in rest.splitlines())
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 1500
    with Store.open(path) as store:
        missing = [mid for mid in acked if mid and store.get(mid) is None]
        assert missing == []
        summary = store.have_summary()
        assert summary["writer"] >= len(acked)  # committed in order, so no holes either


def test_fts_search_ignores_diacritics(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        if not store.fts:
            pytest.skip("this SQLite has no FTS5")
        store.add(chat("Let's meet at the café"), Stamp(T0, 0, "alice"), 1)
        assert [h.snippet for h in store.search("cafe", marks=("[", "]"))] == [
            "Let's meet at the [café]"
        ]


async def test_commits_leave_the_checkpoint_to_a_thread_of_its_own(tmp_path):
    """SQLite's automatic checkpoint (two fsyncs) ran inside the commit that crossed its
    threshold, e.g. the event loop's own insert; a thread copies the log into the file instead."""
    from tests.timing import eventually

    path = tmp_path / "history.db"
    store = Store.open(path)
    assert store._con.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    clock = HLC("alice", Wall())
    ids = {store.add_local(chat(f"m{i}"), clock.now()).msg.id for i in range(5)}

    def in_the_file_itself() -> bool:  # the main file alone, without the log
        con = sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)
        try:
            return ids <= {str(r[0]) for r in con.execute("SELECT id FROM messages")}
        except sqlite3.OperationalError:  # not even the schema is in the file yet
            return False
        finally:
            con.close()

    await eventually(in_the_file_itself, "the log checkpointed into the database file", 10)
    store.close()
    assert ids <= {r.msg.id for r in Store.open(path).recent(limit=10)}


def test_every_insert_path_indexes_its_rows_once_also_after_an_older_version(tmp_path):
    """New rows go into the search index by the store's own inserts (a batch in one statement),
    not a per-row trigger: every insert path indexes its rows. An older version leaves its
    insert trigger behind; it is dropped on open, so rows are not indexed twice."""
    path = tmp_path / "history.db"
    store = Store.open(path)
    clock = HLC("alice", Wall())
    store.add_local(chat("local aardvark"), clock.now())
    store.close()
    con = sqlite3.connect(path, isolation_level=None)  # what an older version did
    con.execute("CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages BEGIN "
                "INSERT INTO messages_fts (rowid, text) VALUES (new.n, new.text); END")
    con.execute("INSERT INTO messages (id, channel, origin, seq, hlc, kind, author, text, ts, "
                "received_at) VALUES ('old1', 'general', 'carol', 1, ?, 'chat', 'Carol', "
                "'older badger', 0, 0)", (HLC("carol", Wall()).now().encode(),))
    con.close()
    store = Store.open(path)
    batch = history({"bob": 3})
    batch[1] = Record(chat("batch zebra", "bob"), batch[1].hlc, 2)
    assert store.add_many(batch) == [True] * 3
    dave = HLC("dave", Wall())
    store.add_many([Record(chat("unverified yak", "dave"), dave.now(), 1)])
    # a verified copy takes the slot: the careful path (``_put``) deletes and inserts
    assert store.add_many([Record(chat("verified yak", "dave"), dave.now(), 1, verified=True)])
    assert store.search("unverified") == []
    for word in ("aardvark", "badger", "zebra", "yak"):
        assert len(store.search(word)) == 1, word
    # the index holds each row exactly once (raises "database disk image is malformed" if not)
    store._con.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
    store._con.execute("DELETE FROM messages WHERE text = 'batch zebra'")  # trigger: index too
    assert store.search("zebra") == [] and len(store.search("badger")) == 1
    store._con.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
    store.close()
