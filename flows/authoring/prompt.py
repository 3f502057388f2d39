"""`flowdeck eval --repl`: evaluate expressions one line at a time, with a history file.

`:ctx` shows the context's top-level names, `:quit` (or Ctrl-D) leaves. Each line is
evaluated as `flowdeck eval` would; an error prints its message and the prompt goes on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from flowdeck.authoring.evaluate import evaluate, show
from flowdeck.errors import FlowdeckError

HISTORY_LINES = 1000
PROMPT = "flowdeck> "


def run_prompt(
    ctx: dict[str, Any],
    history: Path | None,
    *,
    read: Callable[[str], str] = input,
    write: TextIO | None = None,
) -> None:
    output = write or sys.stdout
    readline = _history(history)
    output.write("names: " + ", ".join(sorted(ctx)) + "  (:ctx, :quit)\n")
    while True:
        try:
            line = read(PROMPT).strip()
        except (EOFError, KeyboardInterrupt):
            output.write("\n")
            break
        if not line:
            continue
        if line in (":quit", ":q", ":exit"):
            break
        if line == ":ctx":
            output.write(show(ctx) + "\n")
            continue
        try:
            output.write(show(evaluate(line, ctx)) + "\n")
        except FlowdeckError as error:
            output.write(f"error: {error.message}\n")
    if readline is not None and history is not None:
        try:
            history.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(str(history))
        except OSError:
            pass  # a history that cannot be saved is not worth an error


def _history(path: Path | None) -> Any:
    try:
        import readline
    except ImportError:  # not on every platform
        return None
    readline.set_history_length(HISTORY_LINES)
    if path is not None and path.exists():
        try:
            readline.read_history_file(str(path))
        except OSError:
            pass
    return readline
