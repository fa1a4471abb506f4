"""The Flet rendering of the Markdown subset: styles, links only where checked, code blocks."""

from __future__ import annotations

import flet as ft

from fletchat.markup_flet import MONO, render, semantics


def spans_of(control: ft.Control) -> list[ft.TextSpan]:
    text = control.content if isinstance(control, ft.Container) else control
    assert isinstance(text, ft.Text)
    return list(text.spans or [])


def test_styles_and_safe_links() -> None:
    (para,) = render("**b** *i* `c` [ok](https://a.example/) [bad](javascript:alert(1))")
    spans = spans_of(para)
    by_text = {s.text: s for s in spans}
    assert by_text["b"].style.weight == ft.FontWeight.BOLD
    assert by_text["i"].style.italic is True
    assert by_text["c"].style.font_family == MONO
    assert by_text["ok"].url.url == "https://a.example/"
    assert by_text[" (https://a.example/)"].url is None
    linked = [s.url.url for s in spans if s.url]
    assert linked == ["https://a.example/"]
    assert "[bad](javascript:alert(1))" in "".join(s.text for s in spans)


def test_code_block_and_list_items() -> None:
    controls = render("- one\n  - two\n\n```\nx = 1\n```")
    assert [s.text for s in spans_of(controls[0])][:2] == ["\u2022 ", "one"]
    assert isinstance(controls[1], ft.Container)  # nested item: indented
    code = controls[2]
    assert isinstance(code, ft.Container) and spans_of(code)[0].text == "x = 1"
    assert semantics("**b** and `c`") == "b and c"
