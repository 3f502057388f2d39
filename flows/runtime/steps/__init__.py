"""Runners of the steps with effects outside the engine: HTTP calls, user code, actions.

Each takes already-rendered values and returns the step's JSON output, or raises
`flows.errors.StepError` with a message a person can act on.
"""
