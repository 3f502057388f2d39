"""Former home of ids, tags, result-store I/O, task-run events and log shipping, now split
by topic: `encoding` (ids, tags, labels, states, keys), `journal` (result storage),
`events` (task runs), `logs` (log lines, flush). These names stay importable from here for
the callers outside the store that still use them."""

from __future__ import annotations

from flowdeck.store.encoding import execution_id_for, flow_run_id_for
from flowdeck.store.logs import flush_events

__all__ = ["execution_id_for", "flow_run_id_for", "flush_events"]
