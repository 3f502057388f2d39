"""YAML text -> plain data plus the line/column of every key, value and list item.

Validation messages must point at the exact place an author has to edit, so the loader keeps
a position for every node (1-based, like editors and compilers print them). It also refuses
what YAML libraries usually forgive: a duplicate key silently overwrites the first one in
most loaders, which hides real mistakes in a workflow, so every duplicate is reported with
both positions. Syntax errors become a `YamlSyntaxError` carrying a position, never a
traceback.

The data handed on is plain JSON-like Python (dict, list, str, int, float, bool, None) so the
JSON Schema validator and the model builder see exactly what a JSON tool would see.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from flowdeck.definition.yaml_bounds import YamlBoundError, check_bounds

__all__ = [
    "DataPath",
    "DuplicateKey",
    "Position",
    "YamlDocument",
    "YamlSyntaxError",
    "parse_yaml",
]

# Mapping keys (str) and list indexes (int) from the document's root, like jsonschema's paths.
DataPath: TypeAlias = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    """1-based line and column."""

    line: int
    col: int


@dataclass(frozen=True)
class DuplicateKey:
    """A key that appears twice in one mapping; the first occurrence is the one kept."""

    key: str
    mapping_path: DataPath
    position: Position
    first_position: Position


class YamlSyntaxError(Exception):
    """The text is not YAML; `position` is where the parser gave up."""

    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass
class YamlDocument:
    """One parsed file: plain data, and where each part of it is written."""

    data: Any
    value_positions: dict[DataPath, Position] = field(default_factory=dict)
    key_positions: dict[DataPath, Position] = field(default_factory=dict)
    duplicate_keys: list[DuplicateKey] = field(default_factory=list)

    def position_of(self, path: DataPath) -> Position:
        """Where the value at `path` starts; the closest enclosing value when not recorded."""
        path = tuple(path)
        while path:
            if path in self.value_positions:
                return self.value_positions[path]
            path = path[:-1]
        return self.value_positions.get((), Position(1, 1))

    def key_position_of(self, path: DataPath) -> Position:
        """Where the key naming the value at `path` is written (the value for list items)."""
        path = tuple(path)
        if path in self.key_positions:
            return self.key_positions[path]
        return self.position_of(path)


class _DuplicateRecordingConstructor(RoundTripConstructor):
    """Records duplicate keys instead of stopping at the first one (all problems, one run)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.duplicates: list[tuple[Any, Any, Any]] = []  # (mapping node, key node, key)

    def check_mapping_key(self, node: Any, key_node: Any, mapping: Any, key: Any, value: Any) -> bool:
        if key in mapping:
            self.duplicates.append((node, key_node, key))
            return False  # keep the first value
        return True


def _new_yaml() -> YAML:
    yaml = YAML(typ="rt", pure=True)
    yaml.Constructor = _DuplicateRecordingConstructor
    return yaml


def parse_yaml(text: str) -> YamlDocument:
    """Parse one YAML document; raises YamlSyntaxError with the position of the problem.

    The bounds of `yaml_bounds` (size, depth, expanded aliases, number length) are checked
    first, so no file can exhaust the loader."""
    try:
        check_bounds(text)
    except YamlBoundError as error:
        raise YamlSyntaxError(error.message, Position(error.line, error.col)) from None
    yaml = _new_yaml()
    try:
        loaded = yaml.load(text)
    except MarkedYAMLError as error:
        raise YamlSyntaxError(_syntax_message(error), _mark_position(error)) from None
    except YAMLError as error:  # unmarked errors are rare (e.g. a bad stream); still no trace
        raise YamlSyntaxError(f"YAML syntax error: {error}", Position(1, 1)) from None
    document = YamlDocument(data=None)
    if loaded is not None:
        document.value_positions[()] = _node_position(loaded) or Position(1, 1)
    document.data = _plain(loaded, (), document)
    document.duplicate_keys = _duplicates(yaml, document)
    return document


def _syntax_message(error: MarkedYAMLError) -> str:
    problem = (error.problem or "").strip()
    context = (error.context or "").strip()
    if problem and context:
        return f"YAML syntax error: {problem} ({context})"
    return f"YAML syntax error: {problem or context or 'cannot parse'}"


def _mark_position(error: MarkedYAMLError) -> Position:
    mark = error.problem_mark or error.context_mark
    if mark is None:
        return Position(1, 1)
    return Position(mark.line + 1, mark.column + 1)


def _node_position(value: Any) -> Position | None:
    lc = getattr(value, "lc", None)
    if lc is None or lc.line is None:
        return None
    return Position(lc.line + 1, lc.col + 1)


def _plain(value: Any, path: DataPath, document: YamlDocument) -> Any:
    """Copy ruamel's round-trip objects into plain data, recording positions on the way."""
    if isinstance(value, CommentedMap):
        result: dict[str, Any] = {}
        for key, item in value.items():
            text_key = key if isinstance(key, str) else _scalar_text(key)
            item_path = path + (text_key,)
            key_line_col = _safe_lc(value.lc.key, key)
            value_line_col = _safe_lc(value.lc.value, key)
            if key_line_col:
                document.key_positions[item_path] = key_line_col
            document.value_positions[item_path] = value_line_col or key_line_col or document.position_of(path)
            result[text_key] = _plain(item, item_path, document)
        return result
    if isinstance(value, CommentedSeq):
        items = []
        for index, item in enumerate(value):
            item_path = path + (index,)
            document.value_positions[item_path] = _safe_lc(value.lc.item, index) or document.position_of(path)
            items.append(_plain(item, item_path, document))
        return items
    return _plain_scalar(value)


def _safe_lc(lookup: Any, key: Any) -> Position | None:
    """ruamel has no position for merged (`<<:`) keys; the caller falls back to the parent."""
    try:
        line, col = lookup(key)
    except (KeyError, IndexError, TypeError):
        return None
    return Position(line + 1, col + 1)


def _plain_scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()  # JSON has no dates; the schema sees the text
    tagged = getattr(value, "value", None)  # `!tag value`: keep the value, drop the tag
    if tagged is not None:
        return _plain_scalar(tagged)
    return str(value)


def _scalar_text(key: Any) -> str:
    plain = _plain_scalar(key)
    if plain is None:
        return "null"
    if isinstance(plain, bool):
        return "true" if plain else "false"
    return str(plain)


def _duplicates(yaml: YAML, document: YamlDocument) -> list[DuplicateKey]:
    constructor = yaml.constructor
    found = []
    for mapping_node, key_node, key in constructor.duplicates:
        first = _first_key_position(mapping_node, key_node)
        mapping_path = _path_of_mapping(document, mapping_node)
        found.append(
            DuplicateKey(
                key=key if isinstance(key, str) else _scalar_text(key),
                mapping_path=mapping_path,
                position=Position(key_node.start_mark.line + 1, key_node.start_mark.column + 1),
                first_position=first,
            )
        )
    return found


def _first_key_position(mapping_node: Any, duplicate_node: Any) -> Position:
    for key_node, _ in mapping_node.value:
        if key_node.value == duplicate_node.value:
            mark = key_node.start_mark
            return Position(mark.line + 1, mark.column + 1)
    mark = duplicate_node.start_mark
    return Position(mark.line + 1, mark.column + 1)


def _path_of_mapping(document: YamlDocument, mapping_node: Any) -> DataPath:
    """The data path of the mapping whose node starts where `mapping_node` starts."""
    mark = mapping_node.start_mark
    start = Position(mark.line + 1, mark.column + 1)
    best: DataPath = ()
    for path, position in document.value_positions.items():
        if position == start and len(path) >= len(best):
            best = path
    return best
