"""The live executions table: rows merged in place, newest first, filtered in memory.

`merge()` takes whatever the client fetched and touches only what changed (dolphie style):
`update_cell` where a value differs, `add_row` for new executions, `remove_row` for ones
gone or filtered out, all inside one `batch_update`, with the cursor kept on the same
execution.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from rich.text import Text
from textual.widgets import DataTable

from flowdeck.tui.client import ExecutionRow
from flowdeck.tui.format import STATUS_STYLE, clock, duration, short_id, status_text

__all__ = ["ExecutionFilter", "ExecutionsTable"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
REBUILD_AFTER = 20  # more rows leaving than this: clear and refill (remove_row costs O(rows))
COLUMNS = ("id", "workflow", "mode", "status", "step", "started", "took")
NARROW = {"id": 13, "workflow": 12, "mode": 5, "status": 9, "step": 8, "started": 8, "took": 6}
WIDE = {"id": 37, "workflow": 24, "mode": 5, "status": 11, "step": 28, "started": 8, "took": 8}


class IdCell(str):
    """The id column's value; carries the sort order (newest first)."""

    order: tuple[datetime, str]


@dataclass
class ExecutionFilter:
    status: str | None = None
    workflow_id: str | None = None
    search: str = ""

    def accepts(self, row: ExecutionRow) -> bool:
        if self.status and row.status != self.status:
            return False
        if self.workflow_id and row.workflow_id != self.workflow_id:
            return False
        if self.search and self.search.lower() not in row.execution_id.lower():
            return False
        return True

    def describe(self) -> str:
        parts = [
            f"status={self.status}" if self.status else "",
            f"workflow={self.workflow_id}" if self.workflow_id else "",
            f"id~{self.search}" if self.search else "",
        ]
        return " ".join(p for p in parts if p) or "all"


class ExecutionsTable(DataTable[object]):
    """Recent executions. The app owns fetching; this widget owns showing."""

    def __init__(self, *, show_clocks: bool = True, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.show_clocks = show_clocks
        self.known: dict[str, ExecutionRow] = {}
        self.filter = ExecutionFilter()
        self.wide = False
        self._shown: dict[str, tuple[object, ...]] = {}

    def on_mount(self) -> None:
        self._build_columns()

    def _build_columns(self) -> None:
        widths = WIDE if self.wide else NARROW
        self.clear(columns=True)
        self._shown.clear()
        for name in COLUMNS:
            self.add_column(name, key=name, width=widths[name])

    def on_resize(self) -> None:
        wide = self.size.width >= 140
        if wide != self.wide:
            selected = self.selected_id
            self.wide = wide
            self._build_columns()
            self._sync_view(keep=selected)

    # ---------------------------------------------------------------------------------
    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # an empty or rebuilding table has no cursor row
            return None
        return str(key.value) if key.value is not None else None

    @property
    def active_ids(self) -> list[str]:
        return [i for i, r in self.known.items() if r.status in ("pending", "running", "waiting")]

    def merge(self, rows: list[ExecutionRow], complete: bool) -> None:
        """Only rows that differ from what is known are redrawn."""
        incoming = {row.execution_id: row for row in rows}
        gone = [i for i in self.known if i not in incoming] if complete else []
        for execution_id in gone:
            del self.known[execution_id]
        changed = [i for i, row in incoming.items() if self.known.get(i) != row]
        self.known.update(incoming)
        self._sync_view(only=set(changed) | set(gone))

    def set_filter(self, new_filter: ExecutionFilter) -> None:
        self.filter = new_filter
        self._sync_view()

    def tick(self) -> None:
        """Durations of active rows grow: redraw just those cells."""
        self._sync_view(only=set(self.active_ids))

    # ---------------------------------------------------------------------------------
    def _cells(self, row: ExecutionRow) -> tuple[object, ...]:
        ident = IdCell(short_id(row.execution_id, self.wide))
        ident.order = (row.created_at or row.started_at or EPOCH, row.execution_id)
        status = status_text(row.status) if self.wide else Text(row.status, style=STATUS_STYLE.get(row.status, ""))
        return (
            ident,
            f"{row.workflow_id}@{row.version}",
            row.mode,
            status,
            row.current_step or "",
            clock(row.started_at, self.show_clocks),
            duration(row.started_at, row.ended_at, self.show_clocks),
        )

    def _sync_view(self, keep: str | None = None, only: set[str] | None = None) -> None:
        """Make the table show the filtered rows; `only`: just these ids may have changed."""
        keep = keep or self.selected_id
        keep_index = self.cursor_row
        candidates = self.known.keys() | self._shown.keys() if only is None else only
        leaving = [
            i
            for i in candidates
            if i in self._shown and (i not in self.known or not self.filter.accepts(self.known[i]))
        ]
        if len(leaving) > REBUILD_AFTER or (
            not self._shown and len(candidates) > REBUILD_AFTER
        ):  # remove_row is O(rows)
            self._rebuild(keep, keep_index)
            return
        added = False
        with self.app.batch_update():
            for execution_id in candidates:
                row = self.known.get(execution_id)
                if row is None or not self.filter.accepts(row):
                    if execution_id in self._shown:
                        self.remove_row(execution_id)
                        del self._shown[execution_id]
                    continue
                cells = self._cells(row)
                before = self._shown.get(execution_id)
                if before is None:
                    self.add_row(*cells, key=execution_id)
                    added = True
                else:
                    for name, old, new in zip(COLUMNS, before, cells, strict=True):
                        if old != new or (name == "id" and getattr(old, "order", None) != getattr(new, "order", None)):
                            self.update_cell(execution_id, name, new)
                self._shown[execution_id] = cells
            if added:
                self.sort("id", key=lambda cell: cell.order, reverse=True)
                if keep is not None and keep in self._shown:
                    self.move_cursor(row=self.get_row_index(keep), animate=False, scroll=False)
                elif self.row_count:
                    self.move_cursor(row=min(keep_index, self.row_count - 1), animate=False)

    def _rebuild(self, keep: str | None, keep_index: int) -> None:
        rows = sorted(
            (r for r in self.known.values() if self.filter.accepts(r)),
            key=lambda r: (r.created_at or r.started_at or EPOCH, r.execution_id),
            reverse=True,
        )
        with self.app.batch_update():
            self.clear()
            self._shown.clear()
            for row in rows:
                cells = self._cells(row)
                self.add_row(*cells, key=row.execution_id)
                self._shown[row.execution_id] = cells
            if keep is not None and keep in self._shown:
                self.move_cursor(row=self.get_row_index(keep), animate=False)
            elif self.row_count:
                self.move_cursor(row=min(keep_index, self.row_count - 1), animate=False)
