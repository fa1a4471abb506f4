"""Many rows into and out of SQLite in few steps, for the threads that write and read the store.

Python's ``sqlite3`` lets go of the GIL around every ``sqlite3_step``: ``executemany`` steps
once per row, and so does reading a result row by row. A writer thread that lets go of the GIL
thousands of times while the event loop (or a worker) is busy in Python waits up to the
interpreter's switch interval (5 ms) to get it back each time: the store's writer took 23 s
for 10,000 messages beside one busy thread instead of 0.3 s (bench figure 9; docs/performance.md,
"the writer threads and the GIL"). One ``INSERT ... VALUES (...), (...), ...`` per chunk of rows steps once for the
whole chunk, so the thread hands the GIL over once per chunk and SQLite does the chunk's work
while the other threads run Python.
"""

from __future__ import annotations

import functools
import json
import random
import sqlite3
from collections.abc import Collection, Sequence

ROWS_PER_STATEMENT = 500  # a writer batch (StoreWriter.batch_size) in one statement


def insert_rows(con: sqlite3.Connection, head: str, rows: Sequence[Sequence[object]],
                tail: str = "") -> None:
    """``head`` (``INSERT ... (cols) VALUES``) for every row of ``rows`` (all of one width), in
    chunks of at most ``ROWS_PER_STATEMENT`` rows (fewer if SQLite's limit on bound parameters is
    lower); ``tail`` (``ON CONFLICT ...``) follows each chunk. Inside the caller's transaction:
    a failing chunk raises, as ``executemany`` would."""
    if not rows:
        return
    width = len(rows[0])
    per = _per_statement(con, width)
    one = "(" + ",".join("?" * width) + ")"
    for at in range(0, len(rows), per):
        part = rows[at : at + per]
        con.execute(f"{head} {','.join([one] * len(part))} {tail}",
                    [value for row in part for value in row])


def id_chunks(con: sqlite3.Connection, ids: Sequence[str], extra: int = 0
              ) -> list[tuple[str, list[str]]]:
    """``ids`` in chunks for ``... IN (?, ?, ...)``: (the placeholders, the chunk), each chunk
    at most ``ROWS_PER_STATEMENT`` long and under SQLite's bound-parameter limit with ``extra``
    other parameters in the same statement."""
    per = _per_statement(con, 1, extra)
    out = []
    for at in range(0, len(ids), per):
        part = list(ids[at : at + per])
        out.append((",".join("?" * len(part)), part))
    return out


def _per_statement(con: sqlite3.Connection, width: int, extra: int = 0) -> int:
    """Rows of ``width`` parameters in one statement beside ``extra`` others: at most
    ``ROWS_PER_STATEMENT``, and under SQLite's limit on bound parameters."""
    limit = con.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - extra
    return max(1, min(ROWS_PER_STATEMENT, limit // width))


def all_rows(con: sqlite3.Connection, sql: str, params: Sequence[object],
             columns: Sequence[str], reals: Collection[str] = ()) -> list[list[object]]:
    """Every row of ``sql`` (whose result columns are named ``columns``), in order, read in one
    step: SQLite gathers them into one JSON array (``json_group_array``), so reading 1,000 rows
    hands the GIL over once, not 1,000 times. ``reals`` are REAL columns: they come back as text
    with 20 significant digits (JSON keeps 15), and ``float()`` of it is the stored value. Where
    this SQLite cannot do that exactly (``json_reads_exact``) the rows are read one by one. No
    BLOB columns (JSON cannot hold them)."""
    if not json_reads_exact():
        return [list(r) for r in con.execute(sql, params)]
    cols = ", ".join(f"printf('%!.20g', {c})" if c in reals else c for c in columns)
    row = con.execute(f"SELECT json_group_array(json_array({cols})) FROM ({sql})",
                      params).fetchone()
    rows: list[list[object]] = json.loads(row[0]) if row and row[0] else []
    return rows


@functools.cache
def json_reads_exact() -> bool:
    """Whether this process's SQLite has the JSON functions and prints every double so that it
    reads back exactly (checked once, on times, fractions and extremes; SQLite 3.40 with 17
    digits got 18 of 510,000 wrong here, with 20 none)."""
    rnd = random.Random(20)
    values = [0.0, -0.0, 0.1, 1 / 3, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
              *(rnd.uniform(0, 2e9) for _ in range(500)),
              *(round(rnd.uniform(1.6e9, 2e9), 3) for _ in range(500)),
              *(rnd.uniform(-1e300, 1e300) for _ in range(100))]
    con = sqlite3.connect(":memory:")
    try:
        con.execute("CREATE TABLE v (i INTEGER PRIMARY KEY, x REAL)")
        con.executemany("INSERT INTO v (x) VALUES (?)", [(v,) for v in values])
        (text,) = con.execute("SELECT json_group_array(printf('%!.20g', x)) FROM "
                              "(SELECT x FROM v ORDER BY i)").fetchone()
        return [float(t) for t in json.loads(text)] == values
    except (sqlite3.Error, ValueError):
        return False
    finally:
        con.close()
