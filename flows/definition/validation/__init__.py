"""Every check a workflow definition must pass, reported as `PATH:LINE:COL: error: MESSAGE`.

Validation is complete before anything runs: a definition that reaches the engine has unique
step ids, parseable expressions that only read steps which have run, Python code that defines
`run(ctx)`, valid cron expressions and time zones, and a version story that `latest` can
resolve. Three layers, each reporting every problem it finds rather than the first:

1. YAML (`flowdeck.definition.yaml_source`): syntax errors and duplicate keys, with positions.
2. The JSON Schema (`schemas/workflow.schema.json`), the same file editors and CI use, with
   jsonschema's errors rewritten into sentences that name the step and the field
   (`schema_errors`, in the words of `places`).
3. Checks a schema cannot express: within one file (`in_file._FileChecker`, made of
   `references`, `code_checks` and `timing`) and across the files of a directory
   (`across_files.check_across_files`): live versions, duplicate versions, called workflows.

`report` holds what is reported (`Problem`, `CheckedFile`); `files` finds the files and
runs the layers in order.

Reference rules (documented in docs/definitions.md): an expression may read `input`,
`trigger`, `execution`, and steps that have certainly run before it: earlier siblings,
earlier steps of enclosing blocks, the enclosing condition (its output is set before its
branch runs), and a condition once it is finished. Steps inside a finished condition's
branches may not have run (another branch was taken): reading them is a warning. Anything
else (unknown names, later steps, the step itself, another branch) is an error.
"""

from __future__ import annotations

from flowdeck.definition.validation.across_files import check_across_files, describe_versions
from flowdeck.definition.validation.files import check_paths, check_text, find_definition_files, validate_paths
from flowdeck.definition.validation.report import CheckedFile, Problem, Severity
from flowdeck.definition.validation.schema_errors import schema_validator

__all__ = [
    "Problem",
    "CheckedFile",
    "Severity",
    "schema_validator",
    "check_text",
    "check_across_files",
    "find_definition_files",
    "check_paths",
    "validate_paths",
    "describe_versions",
]
