"""The code-step sandbox: `host` starts, pools, calls and tears down sandboxes; `launcher`
builds the bubblewrap command (namespaces, an unprivileged uid) and checks the host can run
it; `cgroups` bounds the memory and processes of a sandbox's whole tree; `pipes` moves the
call in and the bounded reply out; `child` is the program each one runs (standard library
only, started by path with `-I -S`). docs/security.md says what each layer stops."""
