"""The authoring toolkit: what a workflow author runs before anything is deployed.

Workflow tests that run offline on the interpreter alone (`testfile`, `runner`, `expect`,
`report`), the structure of a workflow (`graph`), the expression evaluator at a prompt
(`evaluate`), scaffolding and the version lifecycle (`scaffold`, `lifecycle`), and
validation output for CI (`checks`). Nothing here needs a Prefect server: it imports the
definition and runtime stages only.
"""
