"""The runtime stage: what a validated definition means when it runs, with no Prefect.

interpreter   `Run`: the steps in order, templates rendered, conditions, waits, calls;
              everything that touches the world outside the YAML goes through `Hooks`
              (recording, journal, waits, checkpoints), which the layers above implement
inputs        input_data against the workflow's input schema
steps/        one runner per step type with side effects: http, code, action
sandbox/      the code step's sandbox: `host` (pooled child processes) and `child`
              (the program each runs, standard library only)
"""
