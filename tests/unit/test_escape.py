"""queuectl.escape on any string: nothing a terminal acts on survives; printable text is kept."""

from __future__ import annotations

import json

from hypothesis import example, given
from hypothesis import strategies as st

from queuectl.escape import escape_json, escape_lines, escape_output, escape_text

BIDI = {"\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F))}
BIDI |= {*map(chr, range(0x2066, 0x206A)), "\u2028", "\u2029"}


def raw(text: str, allowed: str = "") -> list[str]:
    return [
        char
        for char in text
        if char not in allowed and (ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 or char in BIDI)
    ]


# Characters from every plane, with the dangerous ones over-represented.
TEXT = st.text(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from([*map(chr, range(0x20)), *map(chr, range(0x7F, 0xA0)), *BIDI]),
    )
)


@given(TEXT)
@example("\x1b[31mred\r\b\x9b\u202e\t\n")
def test_escape_text_leaves_no_control_or_bidi_character(text: str) -> None:
    escaped = escape_text(text)
    assert not raw(escaped)
    assert escape_text(escaped) == escaped  # escaping twice changes nothing


@given(TEXT)
def test_escape_output_keeps_only_lines_and_tabs(text: str) -> None:
    escaped = escape_output(text)
    assert not raw(escaped, allowed="\n\t")
    assert escaped.count("\n") == text.count("\n")


@given(TEXT)
def test_escape_lines_keeps_only_the_lines(text: str) -> None:
    escaped = escape_lines(text)
    assert not raw(escaped, allowed="\n")
    assert escaped.count("\n") == text.count("\n")


@given(st.recursive(st.none() | TEXT | st.integers(), lambda inner: st.lists(inner)))
def test_escape_json_is_the_same_document_with_nothing_raw(document: object) -> None:
    text = escape_json(json.dumps(document, ensure_ascii=False, indent=2))
    assert not raw(text, allowed="\n")
    assert json.loads(text) == document


def test_examples() -> None:
    assert escape_text("\x1b[31m\r\b\x7f\x9b\u202e\u2066\t\n") == (
        "\\x1b[31m\\r\\x08\\x7f\\x9b\\u202e\\u2066\\t\\n"
    )
    assert escape_text("café 日本語 🎉 \\n") == "café 日本語 🎉 \\n"  # backslashes kept as they are
    assert escape_output("a\tb\r\n") == "a\tb\\r\n"
    assert escape_json('"\x9b\u202e\x7f"') == '"\\u009b\\u202e\\u007f"'
