"""Stored strings made safe to show on a terminal: control characters and bidi overrides escaped.

Commands, cwd, env, hosts, errors and job output come from users and from jobs. Printed
raw, ESC [ 31 m recolours the terminal, \\r and \\b rewrite what is already on the
line, \\x9b is an 8-bit CSI, and a bidi override (U+202E) makes `rm -rf /tmp/txt.sh`
read differently from what runs. So text output shows them as Python's repr would
(`\\x1b`, `\\r`, `\\u202e`); ordinary printable Unicode (accents, CJK, emoji) is kept.
Backslashes are not doubled: this is for reading, not for parsing back, and commands
full of `\\n` in printf formats stay readable.

Imported by the CLI and by the worker's logging set-up; it imports only `re` (which
`json` imports anyway).
"""

from __future__ import annotations

import re

# Bidi formatting characters (reorder what is shown) and the Unicode line and paragraph
# separators (line breaks to some terminals and editors).
_BIDI_AND_SEPARATORS = (
    0x061C,  # ARABIC LETTER MARK
    0x200E,  # LEFT-TO-RIGHT MARK
    0x200F,  # RIGHT-TO-LEFT MARK
    *range(0x202A, 0x202F),  # LRE RLE PDF LRO RLO
    *range(0x2066, 0x206A),  # LRI RLI FSI PDI
    0x2028,  # LINE SEPARATOR
    0x2029,  # PARAGRAPH SEPARATOR
)
# C0 controls, DEL and C1 controls: JSON escapes C0 itself, not DEL or C1.
_C0 = range(0x00, 0x20)
_DEL_AND_C1 = range(0x7F, 0xA0)
_SHORT_NAMES = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _text_escape(code: int) -> str:
    if code in _SHORT_NAMES:
        return _SHORT_NAMES[code]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_TEXT = {code: _text_escape(code) for code in (*_C0, *_DEL_AND_C1, *_BIDI_AND_SEPARATORS)}
# Job output on a terminal keeps its lines and tabs: they lay it out, they cannot rewrite it.
_OUTPUT = {code: escape for code, escape in _TEXT.items() if code not in (0x09, 0x0A)}
# Applied to a JSON document: these characters can only occur inside its strings, where
# \uXXXX is the same character to a JSON reader.
_JSON = {code: f"\\u{code:04x}" for code in (*_DEL_AND_C1, *_BIDI_AND_SEPARATORS)}
_JSON_PATTERN = re.compile("[" + "".join(re.escape(chr(code)) for code in _JSON) + "]")


def escape_text(text: str) -> str:
    """`text` for one line of a table or message: every control and bidi character escaped."""
    # Every character escaped here is one that str.isprintable() refuses (categories
    # Cc, Cf, Zl, Zp), so the common case costs one C-level scan.
    return text if text.isprintable() else text.translate(_TEXT)


def escape_output(text: str) -> str:
    """Job output for a terminal: as escape_text, but newlines and tabs are kept."""
    return text if text.isprintable() else text.translate(_OUTPUT)


def escape_json(document: str) -> str:
    """A JSON text (from json.dumps with ensure_ascii=False) with DEL, C1 and bidi escaped too."""
    # The search first: translate() looks every character up in a dict, about 3 ms for
    # 1,000 jobs with accented commands, where a regex scan that finds nothing costs 0.3 ms.
    if _JSON_PATTERN.search(document) is None:
        return document
    return document.translate(_JSON)


def escape_lines(text: str) -> str:
    """As escape_text, but a multi-line message (a traceback, a log's tail) keeps its lines."""
    return "\n".join(escape_text(line) for line in text.split("\n"))
