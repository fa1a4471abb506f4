"""Web addresses in a message become links (issue 17: they were plain text), shown as written
and followed to exactly that target; a host in non-ASCII letters also shows its real (punycode)
name, so a look-alike domain cannot pass for another. Only http and https. Self-contained (no
Markdown parser), so the static web client, which does not ship markdown-it, links too."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import flet as ft

URL_RE = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
TRAILING = ".,;:!?)]}'\""
LINK_STYLE = ft.TextStyle(color=ft.Colors.BLUE_700, decoration=ft.TextDecoration.UNDERLINE)
TARGET_STYLE = ft.TextStyle(color=ft.Colors.ON_SURFACE_VARIANT)


def real_host(url: str) -> str | None:
    """The ASCII form of the URL's host, or None when the URL has no usable host."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    if not host:
        return None
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return None


def link_parts(text: str) -> list[tuple[str, str, str]]:
    """(shown text, link target or "", note) parts; no target anywhere when nothing links."""
    parts: list[tuple[str, str, str]] = []
    pos = 0
    for m in URL_RE.finditer(text):
        url = m.group(0).rstrip(TRAILING)
        host = real_host(url)
        if host is None:
            continue
        if m.start() > pos:
            parts.append((text[pos:m.start()], "", ""))
        shown_host = urlsplit(url).hostname or ""
        note = f" ({host})" if host != shown_host.lower() else ""
        parts.append((url, url, note))
        pos = m.start() + len(url)
    if pos < len(text):
        parts.append((text[pos:], "", ""))
    return parts


def body_spans(text: str) -> list[ft.TextSpan] | None:
    """Spans for a message body with links; None when it has none (shown as plain text)."""
    parts = link_parts(text)
    if not any(target for _, target, _ in parts):
        return None
    spans: list[ft.TextSpan] = []
    for shown, target, note in parts:
        if not target:
            spans.append(ft.TextSpan(shown))
            continue
        spans.append(ft.TextSpan(shown, style=LINK_STYLE,
                                 url=ft.Url(target, ft.UrlTarget.BLANK)))
        if note:
            spans.append(ft.TextSpan(note, style=TARGET_STYLE))
    return spans
