"""`flowdeck eval`: an expression or `{{ }}` template against a context, with the engine's evaluator.

The context comes from a JSON (or YAML) file, from the context a test case has built by its
end, or (in the CLI, through the engine's read model) from a past execution. The value is
printed with its JSON type, as a step would see it; errors are the engine's messages.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from flowdeck.authoring.runner import EXECUTION_ID, Runner
from flowdeck.authoring.suite import tie_to_workflow
from flowdeck.authoring.testfile import TestFileInvalid, load_test_file
from flowdeck.definition import expressions
from flowdeck.definition.catalog import Catalog
from flowdeck.definition.yaml_source import YamlSyntaxError, parse_yaml
from flowdeck.errors import ConfigurationError

MAX_CONTEXT_BYTES = 10_000_000
MAX_EXPRESSION_CHARS = 100_000
EMPTY_CONTEXT: dict[str, Any] = {
    "input": {},
    "trigger": {"type": "manual"},
    "execution": {"id": EXECUTION_ID, "workflow_id": None, "version": None, "mode": "sync"},
}


def evaluate(expression: str, ctx: dict[str, Any]) -> Any:
    """A template when it holds `{{`, else a bare JSONata expression (like `when`)."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ConfigurationError(
            f"the expression is {len(expression):,} characters, more than the {MAX_EXPRESSION_CHARS:,} allowed"
        )
    if "{{" in expression:
        return expressions.render(expression, ctx)
    return expressions.evaluate(expression, ctx)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def show(value: Any) -> str:
    """The value as JSON and its type: `"c_1"  (string)`."""
    text = json.dumps(value, indent=2 if isinstance(value, (dict, list)) and value else None, ensure_ascii=False)
    return f"{text}  ({json_type(value)})"


def context_from_file(path: Path) -> dict[str, Any]:
    try:
        size = path.stat().st_size
        if size > MAX_CONTEXT_BYTES:
            raise ConfigurationError(f"--ctx {path} is {size:,} bytes, more than the {MAX_CONTEXT_BYTES:,} allowed")
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigurationError(f"cannot read --ctx {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"--ctx {path} is not UTF-8 text") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        try:
            value = parse_yaml(text).data
        except (YamlSyntaxError, RecursionError) as error:
            raise ConfigurationError(f"--ctx {path} is neither JSON nor YAML: {error}") from None
    if not isinstance(value, dict):
        raise ConfigurationError(f'--ctx {path} must hold a mapping like {{"input": {{...}}}}')
    return value


def context_of_case(spec: str, catalog: Catalog) -> dict[str, Any]:
    """`TEST_FILE:NAME`: run that case and return the context its execution built."""
    path, separator, name = spec.rpartition(":")
    if not separator or not path or not name:
        raise ConfigurationError(
            f"--case {spec!r}: write it as TEST_FILE:CASE_NAME, e.g. definitions/hello.test.yaml:greets by name"
        )
    try:
        test_file = load_test_file(path)
        definition = tie_to_workflow(test_file, catalog)
    except TestFileInvalid as invalid:
        raise ConfigurationError(f"--case: {invalid.problems[0]}") from None
    case = next((each for each in test_file.cases if each.name == name), None)
    if case is None:
        names = ", ".join(repr(each.name) for each in test_file.cases)
        raise ConfigurationError(f"--case: {path} has no case {name!r}; its cases: {names}")

    async def go() -> dict[str, Any]:
        runner = Runner(catalog)
        try:
            result = await runner.run(definition, case)
        finally:
            await runner.aclose()
        if result.outcome is None:
            raise ConfigurationError(f"--case: the case's execution did not start: {result.problem}")
        return result.ctx

    return asyncio.run(go())
