"""In-file checks of code steps: the Python parses and defines `run(ctx)` as a plain
function of one argument; syntax errors point at the line inside the YAML block; the
timeout is within MAX_CODE_TIMEOUT (the schema bounds memory_mb itself)."""

from __future__ import annotations

import ast
import warnings

from flowdeck.definition.durations import format_seconds, parse_duration
from flowdeck.definition.model import MAX_CODE_TIMEOUT
from flowdeck.definition.validation.walk import _CheckerBase, _StepInfo
from flowdeck.definition.yaml_source import DataPath, Position


class _CodeChecks(_CheckerBase):
    def _check_code(self, step: _StepInfo) -> None:
        self._check_code_timeout(step)
        code = step.data.get("code")
        if not isinstance(code, str) or not code.strip():
            return
        path = step.path + ("code",)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(code, filename=f"<code of {step.label}>")
        except SyntaxError as error:
            position = self._position_in_text_value(path, error.lineno or 1, error.offset or 1)
            self.item.add(
                "error",
                position,
                f"Python syntax error in the code of {step.label}: {error.msg} (code line {error.lineno or 1})",
            )
            return
        except ValueError as error:  # e.g. a NUL character
            self.error(path, f"the code of {step.label} cannot be parsed: {error}")
            return
        run: ast.FunctionDef | ast.AsyncFunctionDef | ast.Assign | ast.AnnAssign | None = None
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "run":
                run = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(target, ast.Name) and target.id == "run" for target in targets):
                    run = node
        if run is None:
            self.error(
                path, f"the code of {step.label} does not define run(ctx); add `def run(ctx):` returning the output"
            )
            return
        if isinstance(run, ast.AsyncFunctionDef):
            self._code_error(path, run, f"run in {step.label} is async; write `def run(ctx):`")
            return
        if isinstance(run, ast.FunctionDef) and not _accepts_one_argument(run.args):
            self._code_error(
                path, run, f"run in {step.label} must take exactly one argument, the context: `def run(ctx):`"
            )

    def _check_code_timeout(self, step: _StepInfo) -> None:
        try:
            seconds = parse_duration(step.data["timeout"]) if "timeout" in step.data else 0.0
        except ValueError:
            return  # not a duration, or longer than any: reported by the schema or the duration bounds
        if seconds > MAX_CODE_TIMEOUT:
            self.error(
                step.path + ("timeout",),
                f"the timeout of {step.label} is {format_seconds(seconds)}, longer than the "
                f"{format_seconds(MAX_CODE_TIMEOUT)} a code step may run; do longer work in a service "
                "called by an http step",
            )

    def _code_error(self, path: DataPath, node: ast.AST, message: str) -> None:
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0) + 1
        self.item.add("error", self._position_in_text_value(path, line, col), message)

    def _position_in_text_value(self, path: DataPath, line: int, col: int) -> Position:
        """The file position of (line, col) inside a block scalar (`code: |`); else the value."""
        start = self.document.position_of(path)
        lines = self.item.source_text.splitlines()
        if start.line - 1 >= len(lines):
            return start
        indicator = lines[start.line - 1][start.col - 1 : start.col]
        if indicator not in ("|", ">"):
            return start
        target = start.line + line  # content starts on the line after the indicator
        if target - 1 >= len(lines):
            return start
        text = lines[target - 1]
        indent = len(text) - len(text.lstrip(" "))
        block_indent = min(
            (len(row) - len(row.lstrip(" ")) for row in lines[start.line : target] if row.strip()),
            default=indent,
        )
        return Position(target, block_indent + col)


def _accepts_one_argument(arguments: ast.arguments) -> bool:
    positional = arguments.posonlyargs + arguments.args
    required = len(positional) - len(arguments.defaults)
    required_keyword_only = [
        arg for arg, default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True) if default is None
    ]
    if required_keyword_only or required > 1:
        return False
    return bool(positional) or arguments.vararg is not None
