"""`python bench/run.py test`: 200 cases of the example workflows through `flowdeck test`'s runner.

The cases are those of definitions/*.test.yaml (every example workflow, failure paths
included; the code steps run in their sandbox), repeated in order until there are 200, run
the way `flowdeck test` runs them (concurrently, a few at a time). No Prefect server is
involved. Reports the total (the catalog and the test files loaded, every case run and
checked), cases per second, and the median and p95 of one case. Target: under 5 s.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from typing import Any

from _common import ROOT

CASES = 200
TARGET_SECONDS = 5.0


def main() -> dict[str, Any]:
    from flowdeck.authoring.suite import SuiteReport, load_files, run_suite, select
    from flowdeck.definition.catalog import load_catalog

    definitions = ROOT / "definitions"
    started = time.perf_counter()
    catalog = load_catalog(definitions)
    loaded, problems = load_files([definitions], catalog)
    if problems:
        raise SystemExit("the example test files do not load:\n" + "\n".join(map(str, problems)))
    examples = select(loaded, None)
    chosen = list(itertools.islice(itertools.cycle(examples), CASES))
    cases = asyncio.run(run_suite(chosen, catalog))
    suite = SuiteReport(cases=cases, seconds=time.perf_counter() - started)
    per_case = sorted(case.result.seconds for case in cases)
    return {
        "cases": len(cases),
        "distinct_cases": len(examples),
        "workflows": sorted({item.definition.key for item in loaded}),
        "passed": suite.passed,
        "failed": suite.failed,
        "total_seconds": round(suite.seconds, 3),
        "target_seconds": TARGET_SECONDS,
        "within_target": suite.seconds < TARGET_SECONDS,
        "cases_per_second": round(len(cases) / suite.seconds, 1),
        "per_case_median_ms": round(statistics.median(per_case) * 1000, 2),
        "per_case_p95_ms": round(per_case[int(len(per_case) * 0.95) - 1] * 1000, 2),
        "code_step_cases": sum(1 for case in cases if case.definition.id == "score_lead"),
    }
