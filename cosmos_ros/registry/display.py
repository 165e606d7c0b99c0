"""Text from records, made safe for a terminal: control characters are shown escaped, never sent raw.

Why: a note holding ``ESC ]0; ... ESC [2J`` retitled and cleared the reviewer's terminal in
``adapters show``. Every piece of user text (notes, names, actors, metadata values, audit
details) goes through :func:`clean` before it is printed, and into tables as :func:`cell`, so
rich markup in it (``[red]``, ``[/x]``) is shown as typed rather than styled or refused.
"""

from __future__ import annotations

import unicodedata
from typing import Any

#: Format characters that reorder or hide text (bidirectional overrides and isolates).
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: Any) -> str:
    """``value`` as text with control, line-separator and bidi characters written as escapes."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(
        _escaped(ch) if unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI or ch == "\x7f" else ch
        for ch in text
    )


def cell(value: Any) -> Any:
    """A table cell that shows ``value`` cleaned and literally (no rich markup)."""
    from rich.text import Text

    return Text(clean(value))
