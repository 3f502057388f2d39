"""Bounds a definition's YAML must keep before it is built into data.

A definition is a small file written by a person, but the loader reads whatever is in the
directory, and a hostile or broken file used to take the loader down with it: a 540-byte
"billion laughs" file (anchors of aliases of anchors) expanded for 44 s into a MemoryError,
20,000 nested `[` or 3,000 levels of indentation recursed into a RecursionError (a worker
segfaulted), and a 5,000-digit number is beyond Python's int conversion limit. So the text
is first read as a stream of YAML events (ruamel's parser is a state machine: no recursion)
and these bounds are checked, each failure an error at the place it happens:

    MAX_FILE_BYTES      1 MiB of text in one definition file
    MAX_DEPTH           64 levels of nested mappings and lists
    MAX_NODES           100,000 values once every alias is expanded
    MAX_NUMBER_CHARS    100 characters of one unquoted number
"""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    MappingEndEvent,
    ScalarEvent,
    SequenceEndEvent,
)

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "MAX_NODES", "MAX_NUMBER_CHARS", "YamlBoundError", "check_bounds"]

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 100_000
MAX_NUMBER_CHARS = 100

_NUMBER_LIKE = re.compile(r"[-+]?(0[xo])?[0-9_.]+([eE][-+]?[0-9]+)?")


class YamlBoundError(Exception):
    """A bound is broken; `line` and `col` are 1-based."""

    def __init__(self, message: str, line: int, col: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col


def _at(event: Any, message: str) -> YamlBoundError:
    mark = event.start_mark
    return YamlBoundError(message, mark.line + 1, mark.column + 1)


def check_bounds(text: str) -> None:
    """Raise YamlBoundError for the first bound `text` breaks. Syntax errors are left to the
    loader, which reports them with its own message."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise YamlBoundError(
            f"the file is {size:,} bytes, over the limit of {MAX_FILE_BYTES // 1024} KiB for one definition", 1, 1
        )
    # Per open collection: [anchor or None, expanded values inside it so far].
    open_collections: list[list[Any]] = []
    anchored: dict[str, int] = {}  # expanded size of each anchored value
    try:
        for event in YAML(typ="rt", pure=True).parse(text):
            if isinstance(event, CollectionStartEvent):
                if len(open_collections) >= MAX_DEPTH:
                    raise _at(event, f"the document nests deeper than {MAX_DEPTH} levels of mappings and lists")
                open_collections.append([event.anchor, 1])
                continue
            if isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                anchor, count = open_collections.pop()
                if anchor is not None:
                    anchored[anchor] = count
                if open_collections:
                    open_collections[-1][1] += count
                continue
            if isinstance(event, AliasEvent):
                count = anchored.get(event.anchor, 1)
            elif isinstance(event, ScalarEvent):
                _check_scalar(event)
                count = 1
                if event.anchor is not None:
                    anchored[event.anchor] = 1
            else:
                continue
            if open_collections:
                open_collections[-1][1] += count
                # an open collection's count leaves out its open children: the sum is the total
                if sum(each[1] for each in open_collections) > MAX_NODES:
                    raise _at(
                        event,
                        f"the document expands to more than {MAX_NODES:,} values (aliases of aliases?); "
                        "write the values out or use fewer aliases",
                    )
    except (MarkedYAMLError, YAMLError):
        return  # a syntax error: parse_yaml reports it with its position


def _check_scalar(event: Any) -> None:
    value = event.value
    if event.style is None and len(value) > MAX_NUMBER_CHARS and _NUMBER_LIKE.fullmatch(value):
        raise _at(
            event,
            f"a number of {len(value):,} characters is longer than {MAX_NUMBER_CHARS}; quote it if it is text",
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:  # "\ud800" in a double-quoted scalar: Prefect cannot store it
            raise _at(
                event,
                f"a lone surrogate (\\u{ord(value[error.start]):04x}) is not Unicode text; "
                "write the character itself or a \\U0001F600-style escape (YAML does not join surrogate pairs)",
            ) from None
