"""The code-step sandbox: `host` starts, pools, calls and kills child interpreters; `child`
is the program each one runs (standard library only, started by path with `-I -S`)."""
