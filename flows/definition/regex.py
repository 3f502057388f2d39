"""The one regular-expression engine of user-written patterns: RE2, linear in the text.

Definitions are written by people and inputs come from callers, so a pattern such as
`^(a+)+$` must not be able to stall a process (Python's `re` backtracks: 31 bytes of input
froze the API's event loop for 24 s). RE2 (google-re2) matches in time linear in the text
and never backtracks; the price is that it has no lookaround and no backreferences, which a
pattern then reports at validation instead of at run time.

Used for JSONata's regex literals (`$match`, `$replace`, `$split`, `$contains`, `~>`) and
for JSON Schema `pattern` / `patternProperties` in input schemas.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2
from jsonata.regex_engine import RegexFlags

__all__ = ["MAX_PATTERN_LENGTH", "RegexUnsupported", "compile_pattern", "jsonata_regex_engine", "pattern_problem"]

MAX_PATTERN_LENGTH = 1000  # characters of one pattern; RE2's own program size limit sits behind it


class RegexUnsupported(ValueError):
    """A pattern RE2 cannot compile (lookaround, backreferences, a syntax error, too long)."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every rejected pattern to stderr
    return options


@lru_cache(maxsize=2048)
def compile_pattern(pattern: str, flags: str = "") -> Any:
    """A compiled RE2 pattern; `flags` is a subset of "im". Raises RegexUnsupported."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise RegexUnsupported(f"the pattern is longer than {MAX_PATTERN_LENGTH} characters")
    prefix = f"(?{flags})" if flags else ""
    try:
        return re2.compile(prefix + pattern, _options())
    except re2.error as error:
        raise RegexUnsupported(_reason(error)) from None


def _reason(error: Exception) -> str:
    raw = error.args[0] if error.args else error
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if "perl operator" in text and ("(?=" in text or "(?!" in text or "(?<" in text):
        return f"{text}: lookahead and lookbehind are not supported (flowdeck matches in linear time with RE2)"
    if "escape sequence" in text and any(f"\\{digit}" in text for digit in "123456789"):
        return f"{text}: backreferences are not supported (flowdeck matches in linear time with RE2)"
    return text


def pattern_problem(pattern: str) -> str | None:
    """None when `pattern` compiles, else why not (for validation messages)."""
    try:
        compile_pattern(pattern)
    except RegexUnsupported as error:
        return str(error)
    return None


def jsonata_regex_engine(pattern: str, flags: RegexFlags) -> Any:
    """jsonata-python's pluggable `regex_engine`: /pattern/flags literals compile with RE2."""
    letters = ("i" if flags.case_insensitive else "") + ("m" if flags.multiline else "")
    return compile_pattern(pattern, letters)
