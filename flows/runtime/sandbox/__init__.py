"""The code-step sandbox: `host` starts, pools, calls and tears down sandboxes; `launcher`
builds the bubblewrap command (namespaces, an unprivileged uid) and checks the host can run
it; `seccomp` builds the system-call filter bwrap loads; `cgroups` bounds the memory, the
processes and the CPU share of a sandbox's whole tree; `pipes` moves the
call in and the bounded reply out; `child` is the program each one runs (standard library
only, started by path with `-I -S`). docs/security.md says what each layer stops."""
