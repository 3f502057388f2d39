"""How `flowdeck test` reports: pytest-like text, JSON, and JUnit XML for CI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from typing import Any

from flowdeck.authoring.suite import CaseReport, SuiteReport


def progress_mark(case: CaseReport) -> str:
    return "." if case.passed else "F"


def text_report(suite: SuiteReport) -> str:
    """Everything after the progress line: the failures, then the summary line."""
    lines: list[str] = []
    if suite.problems:
        lines.append("")
        lines.extend(str(problem) for problem in suite.problems)
    failed = [case for case in suite.cases if not case.passed]
    if failed:
        lines.append("")
        lines.append(_rule(" FAILURES "))
    for case in failed:
        lines.append(_rule(f" {case.case.name} ", "_"))
        lines.append(f"{case.where}: case '{case.case.name}' of {case.definition.key} ({case.definition.path})")
        for failure in case.failures:
            lines.append("- " + failure)
        lines.extend(_happened(case))
    lines.append(summary_line(suite))
    return "\n".join(lines)


def _happened(case: CaseReport) -> list[str]:
    outcome = case.result.outcome
    if outcome is None:
        return []
    lines = [f"  happened: status {outcome.status}, steps that ran: [{', '.join(case.result.steps)}]"]
    if outcome.error:
        lines.append(f"  failing step '{outcome.error.get('step_name')}': {outcome.error.get('message')}")
    return lines


def summary_line(suite: SuiteReport) -> str:
    parts = [f"{suite.passed} passed", f"{suite.failed} failed"]
    if suite.problems:
        files = len({problem.path for problem in suite.problems})
        parts.append(f"{files} test file{'s' if files != 1 else ''} did not load")
    return ", ".join(parts) + f" in {suite.seconds:.2f}s"


def _rule(title: str, fill: str = "=") -> str:
    width = 78
    side = max(3, (width - len(title)) // 2)
    return f"{fill * side}{title}{fill * side}"


def json_report(suite: SuiteReport) -> dict[str, Any]:
    return {
        "passed": suite.passed,
        "failed": suite.failed,
        "seconds": round(suite.seconds, 3),
        "problems": [
            {"path": p.path, "line": p.line, "col": p.col, "severity": p.severity, "message": p.message}
            for p in suite.problems
        ],
        "cases": [
            {
                "file": case.file.path,
                "line": case.case.line,
                "name": case.case.name,
                "workflow": case.definition.id,
                "version": case.definition.version,
                "passed": case.passed,
                "failures": case.failures,
                "seconds": round(case.result.seconds, 4),
                "execution": case.result.to_json(),
            }
            for case in suite.cases
        ],
    }


def junit_xml(suite: SuiteReport) -> str:
    """One <testsuite> per test file, one <testcase> per case; load problems as <error>s."""
    root = ElementTree.Element(
        "testsuites",
        name="flowdeck test",
        tests=str(len(suite.cases)),
        failures=str(suite.failed),
        errors=str(len(suite.problems)),
        time=f"{suite.seconds:.3f}",
    )
    by_file: dict[str, list[CaseReport]] = {}
    for case in suite.cases:
        by_file.setdefault(case.file.path, []).append(case)
    for path, cases in by_file.items():
        element = ElementTree.SubElement(
            root,
            "testsuite",
            name=path,
            tests=str(len(cases)),
            failures=str(sum(1 for case in cases if not case.passed)),
            errors="0",
            time=f"{sum(case.result.seconds for case in cases):.3f}",
        )
        for case in cases:
            item = ElementTree.SubElement(
                element,
                "testcase",
                classname=case.definition.id,
                name=case.case.name,
                file=case.file.path,
                line=str(case.case.line),
                time=f"{case.result.seconds:.4f}",
            )
            if not case.passed:
                failure = ElementTree.SubElement(item, "failure", message=case.failures[0].splitlines()[0])
                failure.text = "\n".join([f"{case.where}", *case.failures, *_happened(case)])
    for path in sorted({problem.path for problem in suite.problems}):
        element = ElementTree.SubElement(root, "testsuite", name=path, tests="1", failures="0", errors="1")
        item = ElementTree.SubElement(element, "testcase", classname="flowdeck.test", name="load", file=path)
        problems = [problem for problem in suite.problems if problem.path == path]
        error = ElementTree.SubElement(item, "error", message=f"{path} does not load")
        error.text = "\n".join(map(str, problems))
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
