"""``@name`` mentions: finding them, autocompleting them, and "does this message mention me".

Display names may contain spaces ("Ada Lovelace"), so a mention is matched against known names
(longest first), case-insensitively, and must end at a word boundary ("@Ada" is not "@Adam").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..model import MAX_NAME_CHARS


@dataclass(frozen=True)
class Mention:
    start: int  # index of "@"
    end: int  # one past the name
    name: str  # as known (the person's spelling)


def _boundary_after(text: str, i: int) -> bool:
    return i >= len(text) or not (text[i].isalnum() or text[i] == "_")


def _boundary_before(text: str, i: int) -> bool:
    return i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "_@")


def find_mentions(text: str, names: Iterable[str]) -> list[Mention]:
    """Mentions of ``names`` in ``text``, left to right, not overlapping (e-mail addresses such
    as ``ada@example.org`` are not mentions: "@" must not follow a letter)."""
    known = sorted({n for n in names if n}, key=len, reverse=True)
    folded = [(n, n.casefold()) for n in known]
    out: list[Mention] = []
    i = text.find("@")
    while i != -1:
        hit = None
        if _boundary_before(text, i):
            for name, fold in folded:
                end = i + 1 + len(name)
                if text[i + 1 : end].casefold() == fold and _boundary_after(text, end):
                    hit = Mention(i, i + 1 + len(name), name)
                    break
        if hit:
            out.append(hit)
            i = text.find("@", hit.end)
        else:
            i = text.find("@", i + 1)
    return out


def mentions_me(text: str, my_name: str) -> bool:
    """Is ``my_name`` mentioned? (``@everyone``/``@here`` count for everyone.)"""
    return bool(find_mentions(text, [my_name, "everyone", "here"]))


def active_query(text: str, cursor: int | None = None) -> tuple[int, str] | None:
    """The ``@...`` being typed just before the cursor: (index of "@", typed part), or None."""
    cur = len(text) if cursor is None else cursor
    at = text.rfind("@", 0, cur)
    if at == -1 or not _boundary_before(text, at):
        return None
    typed = text[at + 1 : cur]
    if "\n" in typed or len(typed) > MAX_NAME_CHARS or typed.startswith(" ") or "  " in typed:
        return None
    return at, typed


def candidates(typed: str, online: Iterable[str], me: str = "", limit: int = 8) -> list[str]:
    """Online names starting with ``typed`` (case-insensitive), the viewer excluded, sorted."""
    pre = typed.casefold()
    uniq = {n for n in online if n and n != me and n.casefold().startswith(pre)}
    return sorted(uniq, key=lambda n: (n.casefold(), n))[:limit]


def complete(text: str, cursor: int, name: str) -> tuple[str, int]:
    """Replace the ``@typed`` before the cursor with ``@name `` and return (text, new cursor)."""
    q = active_query(text, cursor)
    if q is None:
        return text, cursor
    at, _ = q
    new = f"{text[:at]}@{name} "
    return new + text[cursor:], len(new)
