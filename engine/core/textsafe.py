"""Text that leaves the program for another one: spreadsheet cells and terminals.

* :func:`csv_text` — a CSV text cell a spreadsheet will not run as a formula (OWASP's "CSV
  injection" advice: a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
  gets a leading single quote). For text cells only: numbers are written as they are.
* :func:`encodable` — text that can be written as UTF-8: the undecodable bytes of a file name
  (Python's surrogateescape keeps them as lone surrogates, which no UTF-8 writer accepts) are
  shown as ``\\xNN``, so a file named with Latin-1 bytes is listed, not a crash of the whole output.
* :func:`printable` — a name as it may be printed on a terminal: control characters (C0, DEL,
  C1, line and paragraph separators, bidirectional overrides) and undecodable bytes of a file
  name are shown as visible escapes (``\\x1b``, ``\\u202e``), so a file name cannot move the
  cursor, clear the screen, recolour or reorder what follows, or break a line in two.
"""

from __future__ import annotations

import re

#: A CSV cell starting with one of these is a formula (or becomes one) in Excel, LibreOffice
#: or Google Sheets.
FORMULA_TRIGGERS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: str) -> str:
    """``value`` with a leading ``'`` when it starts with one of :data:`FORMULA_TRIGGERS`.

    The spreadsheet then shows the text (the quote is hidden in Excel) instead of evaluating
    it. The JSON outputs keep the exact value. Undecodable file-name bytes are escaped
    (:func:`encodable`).
    """
    value = encodable(value)
    if value and value[0] in FORMULA_TRIGGERS:
        return "'" + value
    return value


# C0 controls, DEL, C1 controls; U+2028/U+2029 (line/paragraph separators); the bidirectional
# embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) and marks (U+200E/U+200F,
# U+061C); lone surrogates (bytes of a file name that are not UTF-8, under Python's
# surrogateescape).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(text: str) -> str:
    """``text`` with each lone surrogate (an undecodable byte of a file name) replaced by its
    visible escape (``\\xe9``); any other text is returned unchanged."""
    return _SURROGATE.sub(_escape, text)


def printable(text: object) -> str:
    """``str(text)`` with every control character replaced by a visible escape (``\\x1b``,
    ``\\x0a`` for a newline, ``\\u202e``). Printable text, backslashes included, is unchanged."""
    return _UNSAFE.sub(_escape, str(text))


__all__ = ["FORMULA_TRIGGERS", "csv_text", "encodable", "printable"]
