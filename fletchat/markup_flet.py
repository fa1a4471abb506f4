"""Render ``markup`` blocks as Flet controls: one ``ft.Text`` of ``TextSpan``s per block.

Kept apart from ``markup`` (pure, no flet) so the parser can be used and tested anywhere; the UI
calls ``render(text)``. Links open in a new tab/window with their checked target only; the
``semantics_label`` is the plain text, so screen readers (and browser tests) read the message
without markup.
"""

from __future__ import annotations

import flet as ft

from .markup import Block, BlockKind, Span, parse, plain_text

MONO = "monospace"
LINK_COLOR = ft.Colors.BLUE
MUTED_COLOR = ft.Colors.ON_SURFACE_VARIANT
CODE_BG = ft.Colors.with_opacity(0.08, ft.Colors.ON_SURFACE)


def text_span(span: Span) -> ft.TextSpan:
    style = ft.TextStyle(
        weight=ft.FontWeight.BOLD if span.bold else None,
        italic=span.italic,
        font_family=MONO if span.code else None,
        bgcolor=CODE_BG if span.code else None,
        color=LINK_COLOR if span.href else (MUTED_COLOR if span.muted else None),
        decoration=ft.TextDecoration.UNDERLINE if span.href else None,
    )
    url = ft.Url(span.href, ft.UrlTarget.BLANK) if span.href else None
    return ft.TextSpan(span.text, style=style, url=url)


def block_control(block: Block, selectable: bool = True) -> ft.Control:
    spans = [text_span(s) for s in block.spans]
    if block.kind is BlockKind.ITEM:
        spans.insert(0, ft.TextSpan(f"{block.marker} "))
    text = ft.Text(spans=spans, selectable=selectable, semantics_label=block.plain or None)
    if block.kind is BlockKind.CODE:
        return ft.Container(text, bgcolor=CODE_BG, padding=8, border_radius=6)
    if block.depth > 1:
        return ft.Container(text, padding=ft.Padding.only(left=16 * (block.depth - 1)))
    return text


def render(text: str, selectable: bool = True) -> list[ft.Control]:
    """The controls for one message's text (parse results are cached per text)."""
    return [block_control(b, selectable) for b in parse(text)]


def semantics(text: str) -> str:
    """The message as plain text, for a row's semantics label."""
    return plain_text(parse(text))
