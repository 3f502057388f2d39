"""In-file checks of identity and flow: unique ids and names, what each expression may
read (steps that certainly ran before it), and steps that can never run."""

from __future__ import annotations

from typing import Any

from flowdeck.definition import expressions
from flowdeck.definition.validation.places import (
    _describe,
    _did_you_mean,
    _get,
    _is_step,
    _last_index,
    _step_label,
    _subject,
)
from flowdeck.definition.validation.report import CONTEXT_ROOTS, TEMPLATED_FIELDS
from flowdeck.definition.validation.walk import _CheckerBase, _step_mappings, _StepInfo, _strings_with_paths
from flowdeck.definition.yaml_source import DataPath
from flowdeck.errors import ExpressionError


class _ReferenceChecks(_CheckerBase):
    # ---- ids and names

    def _check_step_identity(self) -> None:
        for step in self.steps:
            if step.id is not None:
                first = self.by_id.get(step.id)
                if first is not None:
                    self.error(
                        step.path + ("id",),
                        f"duplicate step id '{step.id}' (also used at line "
                        f"{self._line(first.path)}); step ids are unique in the whole workflow",
                    )
                else:
                    self.by_id[step.id] = step
                if step.id in CONTEXT_ROOTS:
                    self.error(
                        step.path + ("id",),
                        f"'{step.id}' cannot be a step id: expressions use it for the "
                        f"workflow's {step.id}; choose another id",
                    )
        for step in self.steps:  # names after ids: a name must not be another step's id
            if step.name is not None:
                first = self.by_name.get(step.name)
                name_path = step.path + (("name",) if "name" in step.data else ("id",))
                same_as_id = self.by_id.get(step.name) if "name" in step.data else None
                if same_as_id is not None and same_as_id is not step and first is None:
                    self.error(
                        name_path,
                        f"step name '{step.name}' is the id of {same_as_id.label} at line "
                        f"{self._line(same_as_id.path)}; expressions could not tell them apart",
                    )
                elif first is None:
                    self.by_name[step.name] = step
                elif "name" in step.data or "name" in first.data:  # else: a duplicate id, reported
                    self.error(
                        name_path,
                        f"duplicate step name '{step.name}' (also the name of {first.label} "
                        f"at line {self._line(first.path)}); give each step its own 'name'",
                    )
                if "name" in step.data and step.name in CONTEXT_ROOTS:
                    self.error(
                        name_path,
                        f"'{step.name}' cannot be a step name: expressions use it for the workflow's {step.name}",
                    )
        for step in self.steps:
            if step.type == "condition":
                self._check_branch_names(step)

    def _check_branch_names(self, condition: _StepInfo) -> None:
        seen: dict[str, int] = {}
        branches = condition.data.get("branches")
        for index, branch in enumerate(branches if isinstance(branches, list) else []):
            name = branch.get("name") if isinstance(branch, dict) else None
            if not isinstance(name, str):
                continue
            path = condition.path + ("branches", index, "name")
            if name in seen:
                self.error(
                    path,
                    f"duplicate branch name '{name}' in {condition.label} (also branch "
                    f"{seen[name] + 1}); the condition's output names the branch taken",
                )
            else:
                seen[name] = index

    # ---- expressions and what they may read

    def _check_references(self, steps: Any, path: DataPath, definite: set[str], maybe: dict[str, str]) -> None:
        """Walk steps in execution order, knowing which steps certainly ran before each.

        `definite`: ids of steps that have run; `maybe`: ids of steps inside branches of
        finished conditions, mapped to that condition's id. Both are updated in place.
        """
        for _, data, step_path in _step_mappings(steps, path):
            step = self.by_path.get(step_path)
            if step is None:
                continue
            if step.type == "condition":
                branches = data.get("branches")
                for b_index, branch in enumerate(branches if isinstance(branches, list) else []):
                    if not isinstance(branch, dict):
                        continue
                    branch_path = step_path + ("branches", b_index)
                    if "when" in branch:
                        self._check_expression_field(
                            step,
                            branch_path + ("when",),
                            branch["when"],
                            definite,
                            maybe,
                            f"'when' of {_describe(self.data, branch_path)}",
                        )
                    inner = definite | ({step.id} if step.id else set())
                    self._check_references(branch.get("steps"), branch_path + ("steps",), inner, dict(maybe))
                inner = definite | ({step.id} if step.id else set())
                self._check_references(data.get("default"), step_path + ("default",), inner, dict(maybe))
                for nested in self._iter_nested(step):
                    if nested.id and nested.id not in maybe:
                        maybe[nested.id] = step.id or "?"
            else:
                self._check_step_expressions(step, definite, maybe)
            if step.id:
                definite.add(step.id)

    def _check_step_expressions(self, step: _StepInfo, definite: set[str], maybe: dict[str, str]) -> None:
        if step.type == "wait" and "until" in step.data:
            self._check_expression_field(
                step,
                step.path + ("until",),
                step.data["until"],
                definite,
                maybe,
                f"'until' of {step.label}",
            )
        for name in TEMPLATED_FIELDS.get(step.type or "", ()):
            if name not in step.data:
                continue
            for sub_path, text in _strings_with_paths(step.data[name], step.path + (name,)):
                if "{{" not in text:
                    continue
                where = f"{_subject(self.data, sub_path)}"
                problem = expressions.check_template(text)
                if problem:
                    self.error(sub_path, f"invalid template in {where}: {problem}")
                    continue
                for expression in expressions.template_expressions(text):
                    self._check_reads(step, sub_path, expression, definite, maybe, where)

    def _check_expression_field(
        self,
        step: _StepInfo,
        path: DataPath,
        value: Any,
        definite: set[str],
        maybe: dict[str, str],
        where: str,
    ) -> None:
        if not isinstance(value, str) or not value.strip():
            return  # the schema reports it
        problem = expressions.check_syntax(value)
        if problem:
            self.error(path, f"invalid expression in {where}: {problem}")
            return
        self._check_reads(step, path, value, definite, maybe, where)

    def _check_reads(
        self,
        step: _StepInfo,
        path: DataPath,
        expression: str,
        definite: set[str],
        maybe: dict[str, str],
        where: str,
    ) -> None:
        try:
            roots = expressions.referenced_roots(expression)
        except ExpressionError as error:
            self.error(path, f"invalid expression in {where}: {error.message}")
            return
        for root in sorted(roots):
            if root in CONTEXT_ROOTS:
                continue
            target = self.by_id.get(root) or self.by_name.get(root)
            if target is None or target.id is None:
                known = list(CONTEXT_ROOTS) + [info.id for info in self.steps if info.id]
                self.error(
                    path,
                    f"{where} reads '{root}', which is not input, trigger, execution or a "
                    f"step of this workflow{_did_you_mean(root, known)}",
                )
            elif target.id in definite:
                continue
            elif target.id in maybe:
                self.warning(
                    path,
                    f"{where} reads step '{target.id}', which is inside a branch of condition "
                    f"step '{maybe[target.id]}' and may not have run (another branch taken); "
                    f"it reads as null then",
                )
            else:
                self.error(path, f"{where} reads step '{target.id}', {self._why_not_run(step, target)}")

    def _why_not_run(self, reader: _StepInfo, target: _StepInfo) -> str:
        if target.path == reader.path:
            return "its own output, which does not exist while it runs"
        common: DataPath = ()
        for mine, theirs in zip(reader.path, target.path, strict=False):  # paths differ in length
            if mine != theirs:
                break
            common += (mine,)
        if common == reader.path:
            return "which is inside this condition's branches: it has not run when the branches are checked"
        if common and common[-1] == "branches" and _is_step(common[:-1]):
            condition = common[:-1]
        elif _is_step(common) and {reader.path[len(common)], target.path[len(common)]} <= {
            "branches",
            "default",
        }:
            condition = common
        else:
            return f"which has not run yet at this point (it comes later, line {self._line(target.path)})"
        label = _step_label(_get(self.data, condition), _last_index(condition))
        return f"which is in another branch of {label}: the two never run in the same execution"

    # ---- reachability

    def _check_unreachable(self, steps: Any, path: DataPath) -> None:
        ender = None
        for index, data, step_path in _step_mappings(steps, path):
            if ender is not None:
                self.warning(
                    step_path,
                    f"{_step_label(data, index)} never runs: {ender} before it ends the execution",
                )
                return
            if data.get("type") in ("output", "fail"):
                ender = _step_label(data, index)
            if data.get("type") == "condition":
                branches = data.get("branches")
                for b_index, branch in enumerate(branches if isinstance(branches, list) else []):
                    if isinstance(branch, dict):
                        self._check_unreachable(branch.get("steps"), step_path + ("branches", b_index, "steps"))
                self._check_unreachable(data.get("default"), step_path + ("default",))
