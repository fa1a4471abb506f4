"""A safe Markdown subset for message text, parsed to plain value types the UI renders.

Subset: **bold**, *italic*, `inline code`, fenced/indented code blocks, [links](https://…),
<https://autolinks>, bare http(s) URLs, bullet and numbered lists. Everything else is shown as
typed: no HTML, no images (``![x](url)`` is a link like any other, never fetched), no headings
or quotes. Links: only http, https and mailto; a link whose label is not its target is followed
by the real target (in ASCII, so a look-alike domain shows as ``xn--…``).

The parser is markdown-it-py (pure Python, CommonMark, a ``rich``/``flet-cli`` dependency
already in the lock) in its "zero" preset with only the rules above enabled and a nesting cap,
so hostile input costs work linear in its length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .model import MAX_MESSAGE_CHARS

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

ALLOWED_SCHEMES = ("http", "https", "mailto")
MAX_LIST_DEPTH = 4  # lists in lists: a message nested deeper is shown as plain text
# markdown-it's cap on token nesting. Past it, its block parser silently skips the rest of the
# input; each list level takes two, so the cap sits above MAX_LIST_DEPTH's levels and any input
# that reaches it also trips the list-depth check (and is shown as plain text, nothing lost).
MAX_NESTING = 2 * MAX_LIST_DEPTH + 6
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_BARE_URL_RE = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""


class BlockKind(StrEnum):
    PARAGRAPH = "paragraph"
    CODE = "code"  # a code block: one monospace block, text verbatim
    ITEM = "item"  # a list item's first paragraph, shown after ``marker`` at ``depth``


@dataclass(frozen=True)
class Span:
    text: str
    bold: bool = False
    italic: bool = False
    code: bool = False
    href: str = ""  # non-empty: a link to this (already checked) target
    muted: bool = False  # the "(real target)" shown after a link whose label differs


@dataclass(frozen=True)
class Block:
    kind: BlockKind
    spans: tuple[Span, ...]
    depth: int = 0  # list nesting (0 = not in a list)
    marker: str = ""  # "•" or "3." for the first paragraph of a list item
    lang: str = ""  # a code block's info string (shown, never executed or highlighted remotely)

    @property
    def plain(self) -> str:
        return "".join(s.text for s in self.spans)


def safe_link(url: str) -> bool:
    """Only absolute http(s) and mailto links; javascript:, data:, file:, relative paths and
    every other scheme are refused (the text stays, unlinked)."""
    m = _SCHEME_RE.match(url.strip())
    if not m or m.group(1).lower() not in ALLOWED_SCHEMES:
        return False
    if m.group(1).lower() == "mailto":
        return "@" in url
    try:
        return bool(urlsplit(url.strip()).hostname)
    except ValueError:  # e.g. an unbalanced "[" in the host part
        return False


@cache
def _parser() -> MarkdownIt:
    """Made at the first message shown: importing markdown-it costs the browser client
    (Pyodide) a noticeable part of its start-up, before the login it does not need it for."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("zero", {"maxNesting": MAX_NESTING, "html": False, "breaks": True})
    md.enable(["emphasis", "backticks", "fence", "code", "link", "list", "autolink",
               "newline", "escape"])  # no "entity": "&amp;" is shown as typed
    md.validateLink = safe_link  # type: ignore[method-assign]
    return md


@lru_cache(maxsize=1024)
def parse(text: str) -> tuple[Block, ...]:
    """Message text -> blocks of spans (cached: a row is redrawn far more often than written).

    Shown as one plain paragraph instead: text over the message limit (never valid from the
    model), and text the parser would drop (markdown-it stops at the nesting cap and skips the
    rest: ``- - - - …`` nested past it would otherwise vanish)."""
    if len(text) > MAX_MESSAGE_CHARS:
        return (Block(BlockKind.PARAGRAPH, (Span(text),)),)
    tokens = _parser().parse(text)
    if not _covers(tokens, text):
        return (Block(BlockKind.PARAGRAPH, (Span(text),)),)
    blocks = _blocks(tokens)
    if blocks is None:
        return (Block(BlockKind.PARAGRAPH, (Span(text),)),)
    return tuple(blocks)


def _covers(tokens: list[Token], text: str) -> bool:
    """Does every non-blank source line belong to some top-level block?"""
    covered: set[int] = set()
    for tok in tokens:
        if tok.level == 0 and tok.map:
            covered.update(range(tok.map[0], tok.map[1]))
    return all(i in covered for i, line in enumerate(text.split("\n")) if line.strip())


def _blocks(tokens: list[Token]) -> list[Block] | None:
    """The blocks, or None when lists nest deeper than MAX_LIST_DEPTH."""
    blocks: list[Block] = []
    stack: list[list[int | str]] = []  # per open list: [kind "ul"/"ol", next number]
    pending_marker = ""
    for tok in tokens:
        t = tok.type
        if pending_marker and t in ("bullet_list_open", "ordered_list_open", "fence",
                                    "code_block", "list_item_close"):
            # an item that starts with a list or code, or is empty: its marker still shows
            blocks.append(Block(BlockKind.ITEM, (), len(stack), pending_marker))
            pending_marker = ""
        if t in ("bullet_list_open", "ordered_list_open"):
            start = int(tok.attrGet("start") or 1) if t == "ordered_list_open" else 0
            stack.append(["ol" if start else "ul", start])
            if len(stack) > MAX_LIST_DEPTH:
                return None
        elif t in ("bullet_list_close", "ordered_list_close"):
            stack.pop()
        elif t == "list_item_open":
            top = stack[-1]
            if top[0] == "ol":
                pending_marker = f"{top[1]}."
                top[1] = int(top[1]) + 1
            else:
                pending_marker = "\u2022"
        elif t in ("fence", "code_block"):
            blocks.append(Block(BlockKind.CODE, (Span(tok.content.rstrip("\n"), code=True),),
                                len(stack), "", tok.info.strip()))
        elif t == "inline":
            spans = tuple(_inline(tok.children or []))
            if pending_marker:
                blocks.append(Block(BlockKind.ITEM, spans, len(stack), pending_marker))
                pending_marker = ""
            else:
                blocks.append(Block(BlockKind.PARAGRAPH, spans, len(stack)))
    return blocks


_DEPTH = {"strong_open": ("bold", 1), "strong_close": ("bold", -1),
          "em_open": ("italic", 1), "em_close": ("italic", -1)}


def _inline(children: list[Token]) -> list[Span]:
    out: list[Span] = []
    depth = {"bold": 0, "italic": 0}
    href = ""
    label: list[str] = []
    for tok in children:
        t = tok.type
        if t in _DEPTH:
            style, step = _DEPTH[t]
            depth[style] += step
        elif t == "link_open":
            href = str(tok.attrGet("href") or "")
            label = []
        elif t == "link_close":
            out.extend(_link_target(href, "".join(label)))
            href = ""
        elif t in ("softbreak", "hardbreak"):
            out.append(Span("\n"))
        elif t == "code_inline":
            out.append(Span(tok.content, code=True, href=href))
            label.append(tok.content)
        elif t in ("text", "html_inline"):
            bold, italic = depth["bold"] > 0, depth["italic"] > 0
            if href:
                out.append(Span(tok.content, bold, italic, href=href))
                label.append(tok.content)
            else:
                out.extend(_linkify(tok.content, bold, italic))
    return _merge(out)


def _link_target(href: str, label: str) -> list[Span]:
    """A link whose text is not its target shows the real target after it."""
    if label.strip() != href and href.removeprefix("mailto:") != label:
        return [Span(f" ({href})", muted=True)]
    return []


def _linkify(text: str, bold: bool, italic: bool) -> list[Span]:
    """Bare http(s) URLs in plain text become links to exactly what is written."""
    out: list[Span] = []
    pos = 0
    for m in _BARE_URL_RE.finditer(text):
        url = m.group(0).rstrip(_TRAILING)
        if m.start() > pos:
            out.append(Span(text[pos:m.start()], bold, italic))
        target = _parser().normalizeLink(url)
        out.append(Span(url, bold, italic, href=target if safe_link(target) else ""))
        if target != url:
            out.append(Span(f" ({target})", muted=True))
        pos = m.start() + len(url)
    if pos < len(text):
        out.append(Span(text[pos:], bold, italic))
    return out


def _merge(spans: list[Span]) -> list[Span]:
    """Neighbouring spans with the same style become one (fewer TextSpans to draw)."""
    out: list[Span] = []
    for s in spans:
        if not s.text:
            continue
        if out and (out[-1].bold, out[-1].italic, out[-1].code, out[-1].href, out[-1].muted) == (
            s.bold, s.italic, s.code, s.href, s.muted
        ):
            out[-1] = Span(out[-1].text + s.text, s.bold, s.italic, s.code, s.href, s.muted)
        else:
            out.append(s)
    return out


def plain_text(blocks: tuple[Block, ...] | list[Block]) -> str:
    """What a screen reader or a notification shows: the text without markup."""
    lines = []
    for b in blocks:
        prefix = "  " * max(b.depth - 1, 0) + (b.marker + " " if b.marker else "")
        lines.append(prefix + b.plain)
    return "\n".join(lines)
