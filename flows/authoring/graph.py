"""`flowdeck graph`: a workflow's structure as an indented tree, a Mermaid flowchart or Graphviz dot.

The tree shows the steps in order, each condition's branches with their `when`, nested
steps, waits and sub-workflow calls. The flowcharts draw the paths an execution can take:
a condition forks into its branches (and its default), the branches join at the step after
the condition, an `output` or `fail` step ends its path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from flowdeck.definition.durations import format_seconds
from flowdeck.definition.model import (
    ActionStep,
    CodeStep,
    ConditionStep,
    FailStep,
    HttpStep,
    OutputStep,
    Step,
    WaitStep,
    WorkflowCallStep,
    WorkflowDefinition,
)

FORMATS = ("text", "mermaid", "dot")
_LABEL_CHARS = 60


def render(definition: WorkflowDefinition, fmt: str = "text") -> str:
    if fmt == "mermaid":
        return _mermaid(_flow(definition))
    if fmt == "dot":
        return _dot(_flow(definition), definition)
    return _text(definition)


def summary(step: Step) -> str:
    """What a step does, in a few words: `GET https://...`, `15m`, `calls lookup_contact@latest`."""
    if isinstance(step, HttpStep):
        return f"{step.method} {_short(str(step.url))}"
    if isinstance(step, WaitStep):
        return format_seconds(step.duration) if step.duration is not None else f"until {_short(step.until or '')}"
    if isinstance(step, WorkflowCallStep):
        return f"calls {step.workflow_id}@{step.version}"
    if isinstance(step, ActionStep):
        return step.uses
    if isinstance(step, CodeStep):
        return f"run(ctx), {format_seconds(step.timeout)} limit"
    if isinstance(step, OutputStep):
        return "ends: success (" + ", ".join(step.fields) + ")"
    if isinstance(step, FailStep):
        return f"ends: failed ({_short(str(step.message))})"
    return ""


def _title(step: Step) -> str:
    name = f' "{step.name}"' if step.name != step.id else ""
    return f"{step.id}{name} [{step.type}]"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 3] + "..."


# --------------------------------------------------------------------------- text


def _text(definition: WorkflowDefinition) -> str:
    lines = [f"{definition.key} ({definition.status}) {definition.name}: {definition.path}"]
    _text_block(definition.steps, "", lines)
    return "\n".join(lines)


def _text_block(steps: tuple[Step, ...], indent: str, lines: list[str]) -> None:
    for index, step in enumerate(steps):
        last = index == len(steps) - 1
        detail = summary(step)
        lines.append(f"{indent}{'└─ ' if last else '├─ '}{_title(step)}" + (f"  {detail}" if detail else ""))
        if isinstance(step, ConditionStep):
            inner = indent + ("   " if last else "│  ")
            arms = [(f"{branch.name} when {_short(branch.when)}", branch.steps) for branch in step.branches]
            arms.append(("default", step.default))
            for arm_index, (label, block) in enumerate(arms):
                arm_last = arm_index == len(arms) - 1
                lines.append(f"{inner}{'└─ ' if arm_last else '├─ '}◇ {label}")
                if block:
                    _text_block(block, inner + ("   " if arm_last else "│  "), lines)


# --------------------------------------------------------------------------- flowcharts


@dataclass
class _Flow:
    nodes: list[tuple[str, str, str]] = field(default_factory=list)  # (node id, label, shape)
    edges: list[tuple[str, str, str]] = field(default_factory=list)  # (from, to, label)


def _flow(definition: WorkflowDefinition) -> _Flow:
    flow = _Flow()
    flow.nodes.append(("start", "start", "terminal"))
    exits = _flow_block(definition.steps, [("start", "")], flow)
    if exits:  # the steps can run out: success with output {}
        flow.nodes.append(("finish", "end: success, output {}", "terminal"))
    for source, label in exits:
        flow.edges.append((source, "finish", label))
    return flow


def _flow_block(steps: tuple[Step, ...], entries: list[tuple[str, str]], flow: _Flow) -> list[tuple[str, str]]:
    """Draw `steps` after `entries` (node, edge label); return the open ends after them."""
    for step in steps:
        if not entries:  # after an output or fail: never runs (validation warns)
            break
        node = f"s_{step.id}"
        detail = summary(step)
        flow.nodes.append((node, _title(step) + (f"\n{detail}" if detail else ""), _shape(step)))
        for source, label in entries:
            flow.edges.append((source, node, label))
        entries = [] if isinstance(step, (OutputStep, FailStep)) else [(node, "")]
        if isinstance(step, ConditionStep):
            entries = []
            for branch in step.branches:
                entries += _flow_block(branch.steps, [(node, f"{branch.name}: {_short(branch.when)}")], flow)
            entries += _flow_block(step.default, [(node, "default")], flow)
    return entries


def _shape(step: Step) -> str:
    return {"condition": "decision", "wait": "wait", "workflow": "call", "output": "end", "fail": "end"}.get(
        step.type, "step"
    )


_MERMAID_SHAPES = {
    "terminal": ('(["', '"])'),
    "decision": ('{"', '"}'),
    "wait": ('{{"', '"}}'),
    "call": ('[["', '"]]'),
    "end": ('(["', '"])'),
    "step": ('["', '"]'),
}


def _mermaid(flow: _Flow) -> str:
    lines = ["flowchart TD"]
    for node, label, shape in flow.nodes:
        opening, closing = _MERMAID_SHAPES[shape]
        lines.append(f"    {node}{opening}{_mermaid_text(label)}{closing}")
    for source, target, label in flow.edges:
        arrow = f' -- "{_mermaid_text(label)}" -->' if label else " -->"
        lines.append(f"    {source}{arrow} {target}")
    return "\n".join(lines)


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("\n", "<br/>")


_DOT_SHAPES = {
    "terminal": "oval",
    "decision": "diamond",
    "wait": "hexagon",
    "call": "box3d",
    "end": "oval",
    "step": "box",
}


def _dot(flow: _Flow, definition: WorkflowDefinition) -> str:
    lines = [f"digraph {json.dumps(definition.key)} {{", "  rankdir=TB;", '  node [fontname="Helvetica"];']
    for node, label, shape in flow.nodes:
        lines.append(f"  {node} [shape={_DOT_SHAPES[shape]}, label={json.dumps(label)}];")
    for source, target, label in flow.edges:
        lines.append(f"  {source} -> {target}" + (f" [label={json.dumps(label)}];" if label else ";"))
    lines.append("}")
    return "\n".join(lines)
