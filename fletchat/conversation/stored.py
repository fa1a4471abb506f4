"""How the store keeps conversation fields (schema v3, docs/store.md): a ``conv`` JSON column with
the kind's signed fields, ``redacted_by`` (the delete that erased the row's text), and the two
operations the hub needs: load the event rows, and erase a deleted message's text everywhere
(message table and full-text index; the slot stays, as a stub catch-up can hand on)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .fields import ConvFields
from .kinds import ReplyRef

if TYPE_CHECKING:
    from ..model import Message
    from ..store import Record

EVENTS_SQL = "('reaction', 'edit', 'delete')"


def conv_columns(msg: Message) -> tuple[str | None, str | None]:
    """(conv JSON, redacted_by) for an insert."""
    c = msg.conv
    if c is None:
        return None, None
    signed = c.signed(msg.kind)
    redacted = c.redacted.delete.id if c.redacted is not None else (c.redacted_by or None)
    return (json.dumps(signed, ensure_ascii=False, separators=(",", ":")) if signed else None,
            redacted)


def stored_conv(kind: str, raw: object, redacted_by: object) -> ConvFields:
    """The inverse of ``conv_columns`` for rows this store validated before writing them."""
    data: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else {}
    reply = data.get("reply")
    return ConvFields(
        reply=ReplyRef(reply["parent"], reply["parent_author"], reply["quote"]) if reply else None,
        target=data.get("target", ""), emoji=data.get("emoji", ""), on=data.get("on", True),
        target_seq=data.get("target_seq", 0), erases=tuple(data.get("erases", ())),
        was=data.get("was", ""), redacted_by=str(redacted_by or ""),
    )


class ConvStoreMethods:
    """Mixed into ``store.Store`` (uses its connection, lock, columns and transactions)."""

    _con: sqlite3.Connection
    _lock: threading.RLock
    _cols: str
    _transaction: Callable[[], Any]
    _records: Callable[[str, Sequence[object]], list[Record]]

    def conversation_events(self) -> list[Record]:
        """Every reaction, edit and delete held, in arrival order (the hub folds them)."""
        with self._lock:  # in one step (Store._records): there may be tens of thousands
            return self._records(f"FROM messages m WHERE m.kind IN {EVENTS_SQL} ORDER BY m.n", ())

    def redact(self, delete: Message) -> int:
        """Erase the text of ``delete``'s target and of its author's edits of it (the author
        rule is the caller's: ``delete`` was checked). Returns the rows erased."""
        assert delete.conv is not None
        target = delete.conv.target
        with self._lock, self._transaction():
            cur = self._con.execute(
                "UPDATE messages SET text = '', redacted_by = ? WHERE id = ? AND origin = ? "
                "AND author = ? AND (text != '' OR redacted_by IS NULL)",
                (delete.id, target, delete.origin, delete.author))
            n = cur.rowcount
            cur = self._con.execute(
                "UPDATE messages SET text = '', redacted_by = ? WHERE kind = 'edit' AND origin = ? "
                "AND author = ? AND json_extract(conv, '$.target') = ? "
                "AND (text != '' OR redacted_by IS NULL)",
                (delete.id, delete.origin, delete.author, target))
            return n + cur.rowcount
