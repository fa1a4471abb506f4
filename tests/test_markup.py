"""The Markdown subset: what renders, what is refused (schemes, HTML, images), and hostile input
(nesting, 4000-character messages) that must neither crash, nor lose text, nor blow up."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fletchat.markup import (
    MAX_LIST_DEPTH,
    BlockKind,
    Span,
    parse,
    plain_text,
    safe_link,
)
from fletchat.model import MAX_MESSAGE_CHARS


def spans(text: str) -> list[Span]:
    return [s for b in parse(text) for s in b.spans]


def links(text: str) -> list[tuple[str, str]]:
    return [(s.text, s.href) for s in spans(text) if s.href]


def test_inline_styles() -> None:
    got = [(s.text, s.bold, s.italic, s.code) for s in spans("**b** *i* _j_ `c` ***bi***")]
    assert got == [("b", True, False, False), (" ", False, False, False),
                   ("i", False, True, False), (" ", False, False, False),
                   ("j", False, True, False), (" ", False, False, False),
                   ("c", False, False, True), (" ", False, False, False),
                   ("bi", True, True, False)]


def test_code_block_keeps_text_verbatim_and_unstyled() -> None:
    (block,) = parse("```python\n**not bold** <b>x</b>\n  indented\n```")
    assert block.kind is BlockKind.CODE and block.lang == "python"
    assert block.spans == (Span("**not bold** <b>x</b>\n  indented", code=True),)


def test_lists() -> None:
    blocks = parse("intro\n\n- one\n- two\n  1. a\n  2. b\n\n5. five\n6. six")
    got = [(b.kind.value, b.depth, b.marker, b.plain) for b in blocks]
    assert got == [
        ("paragraph", 0, "", "intro"),
        ("item", 1, "\u2022", "one"), ("item", 1, "\u2022", "two"),
        ("item", 2, "1.", "a"), ("item", 2, "2.", "b"),
        ("item", 1, "5.", "five"), ("item", 1, "6.", "six"),
    ]


def test_newlines_are_kept() -> None:
    assert plain_text(parse("line one\nline two")) == "line one\nline two"


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://example.org/x", True), ("http://10.0.0.2:8550/", True),
        ("HTTPS://EXAMPLE.ORG", True), ("mailto:ada@example.org", True),
        ("javascript:alert(1)", False), ("JaVaScRiPt:alert(1)", False),
        (" javascript:alert(1)", False), ("data:text/html;base64,PHNjcmlwdD4=", False),
        ("file:///etc/passwd", False), ("vbscript:x", False), ("ftp://x", False),
        ("/relative", False), ("//evil.example", False), ("https:evil", False), ("", False),
        ("http://", False), ("https://[::1", False), ("mailto:", False),
    ],
)
def test_only_http_https_mailto_links(url: str, ok: bool) -> None:
    assert safe_link(url) is ok
    got = links(f"[click]({url})")
    assert bool(got) is ok
    if not ok:
        assert "click" in plain_text(parse(f"[click]({url})"))  # the text stays, unlinked


@pytest.mark.parametrize(
    "text",
    ["<javascript:alert(1)>", "[x](javascript&#58;alert(1))", "[x](java\nscript:alert(1))",
     "[x](&#x6A;avascript:alert(1))", "[x]( javascript:alert(1) )", "[x](data:image/png;base64,AA)"],
)
def test_obfuscated_dangerous_links_are_never_links(text: str) -> None:
    assert all(not href.lower().lstrip().startswith(("javascript", "data", "file"))
               for _, href in links(text))
    assert links(text) == []


def test_a_link_shows_its_real_target_when_the_label_differs() -> None:
    got = [(s.text, s.href, s.muted) for s in spans("[https://bank.example](https://evil.example/)")]
    assert got == [("https://bank.example", "https://evil.example/", False),
                   (" (https://evil.example/)", "", True)]
    # same label and target: shown once
    assert [s.text for s in spans("<https://ok.example/>")] == ["https://ok.example/"]


def test_look_alike_domains_show_in_ascii() -> None:
    cyrillic_a = "\u0430"
    got = spans(f"go to https://ex{cyrillic_a}mple.com/login now")
    link = next(s for s in got if s.href)
    assert link.href.startswith("https://xn--")
    assert any(s.muted and "xn--" in s.text for s in got)


def test_bare_urls_become_links_without_trailing_punctuation() -> None:
    assert links("see https://a.example/x, and (http://b.example/y).") == [
        ("https://a.example/x", "https://a.example/x"), ("http://b.example/y", "http://b.example/y")]
    assert links("`https://in.code/` stays code") == []


def test_no_html_and_no_images() -> None:
    text = "<img src=x onerror=alert(1)> <b>hi</b> ![pic](https://tracker.example/p.png)"
    got = spans(text)
    assert "<img src=x onerror=alert(1)> <b>hi</b> !" in "".join(s.text for s in got)
    # the image is a plain link to its target, never fetched
    assert ("pic", "https://tracker.example/p.png") in links(text)


def test_entities_are_shown_as_typed() -> None:
    assert plain_text(parse("a &amp; b &#60;")) == "a &amp; b &#60;"


@pytest.mark.parametrize(
    "text",
    [
        "- " * 2000, "1. " * 1333, "> " * 2000, "*" * 4000, "_" * 4000, "[" * 4000,
        "[a](" * 1000, "`" * 4000, "**_" * 1333, "<" * 4000, "<http://" * 500,
        "".join("  " * i + "- x\n" for i in range(60)), "```\n" * 1000, "*a " * 1333,
        "\\" * 4000, "](" * 2000, "![" * 2000,
    ],
)
def test_hostile_input_loses_no_text(text: str) -> None:
    text = text[:MAX_MESSAGE_CHARS]
    blocks = parse(text)
    words_in = set(re.findall(r"[A-Za-z0-9]+", text))
    assert words_in <= set(re.findall(r"[A-Za-z0-9]+", plain_text(blocks)))
    assert sum(len(b.spans) for b in blocks) <= len(text)  # output bounded by input


def test_lists_deeper_than_the_cap_are_shown_as_plain_text() -> None:
    deep = "".join("  " * i + f"- level{i}\n" for i in range(MAX_LIST_DEPTH + 3))
    (block,) = parse(deep)
    assert block.kind is BlockKind.PARAGRAPH and block.plain == deep
    ok = "".join("  " * i + f"- level{i}\n" for i in range(MAX_LIST_DEPTH))
    assert [b.depth for b in parse(ok)] == list(range(1, MAX_LIST_DEPTH + 1))


def test_over_long_text_is_not_parsed() -> None:
    text = "**x** " * 1000
    (block,) = parse(text)
    assert block.spans == (Span(text),)


ALPHABET = st.sampled_from(list("ab *_`[]()<>!-1.\n\\:/#&;") + ["http://", "https://x.y/", "- ",
                                                                "1. ", "```", "  "])


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, max_size=200).map("".join))
def test_any_text_parses_keeps_its_words_and_links_only_safely(text: str) -> None:
    blocks = parse(text)
    out = plain_text(blocks) + " " + " ".join(b.lang for b in blocks)
    # Markup may join two words ("a```a```" shows "a" then code "a"), never drop one.
    joined = re.sub(r"[^A-Za-z0-9]", "", out)
    assert all(w in joined for w in re.findall(r"[A-Za-z0-9]+", text))
    for b in blocks:
        for s in b.spans:
            assert not s.href or safe_link(s.href)
