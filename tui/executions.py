"""The live executions table: rows merged in place, newest first, filtered in memory.

`merge()` takes whatever the client fetched and touches only what changed (dolphie style):
`update_cell` where a value differs, `add_row` for new executions, `remove_row` for ones
gone or filtered out, all inside one `batch_update`, with the cursor kept on the same
execution, unless "follow newest" is on (the default): then a new execution takes the
cursor, until the user moves it down. Columns are sized to their content; space marks
rows for bulk cancel and re-run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rich.text import Text
from textual.binding import Binding
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowKey

from flowdeck.tui.client import ExecutionRow
from flowdeck.tui.format import STATUS_STYLE, clock, duration, short_id, status_text
from flowdeck.tui.vim import VimTable

__all__ = ["ExecutionFilter", "ExecutionsTable", "counters", "finished_per_minute", "sparkline"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
REBUILD_AFTER = 20  # more rows leaving than this: clear and refill (remove_row costs O(rows))
COLUMNS = ("mark", "id", "workflow", "mode", "status", "step", "started", "took")
FIXED = {"mark": 1, "mode": 5, "status": 11, "started": 8}  # the others fit their content
GROWS = {"workflow", "step", "took"}  # a changed cell here may widen its column (a fixed one never)
WIDE_AT = 140  # from this width the id is shown whole
STARTED_AT = 100  # below this width the started column gives its room to the others
NARROW_STEP = 12
SPARK = "▁▂▃▄▅▆▇█"


def _width(value: object) -> int:
    return value.cell_len if isinstance(value, Text) else len(str(value))


class IdCell(str):
    """The id column's value; carries the sort order (newest first)."""

    order: tuple[datetime, str]


@dataclass
class ExecutionFilter:
    status: str | None = None
    workflow_id: str | None = None
    search: str = ""  # words matched against id, workflow@version, status and current step

    def accepts(self, row: ExecutionRow) -> bool:
        if self.status and row.status != self.status:
            return False
        if self.workflow_id and row.workflow_id != self.workflow_id:
            return False
        if self.search:
            haystack = f"{row.execution_id} {row.workflow_id}@{row.version} {row.status} {row.current_step or ''}"
            return all(word in haystack.lower() for word in self.search.lower().split())
        return True

    def describe(self) -> str:
        parts = [
            f"status={self.status}" if self.status else "",
            f"workflow={self.workflow_id}" if self.workflow_id else "",
            f"~{self.search}" if self.search else "",
        ]
        return " ".join(p for p in parts if p) or "all"


def counters(rows: list[ExecutionRow], now: datetime) -> dict[str, int]:
    """running and waiting now, failed in the last hour."""
    hour_ago = now - timedelta(hours=1)
    return {
        "running": sum(r.status == "running" for r in rows),
        "waiting": sum(r.status == "waiting" for r in rows),
        "failed 1h": sum(r.status == "failed" and (r.ended_at or r.created_at or EPOCH) >= hour_ago for r in rows),
    }


def finished_per_minute(rows: list[ExecutionRow], now: datetime, minutes: int = 20) -> list[int]:
    """Executions that ended in each of the last `minutes` minutes, oldest first."""
    counts = [0] * minutes
    for row in rows:
        if row.ended_at is None:
            continue
        age = int((now - row.ended_at).total_seconds() // 60)
        if 0 <= age < minutes:
            counts[minutes - 1 - age] += 1
    return counts


def sparkline(counts: list[int]) -> str:
    top = max(counts) if counts else 0
    if top == 0:
        return SPARK[0] * len(counts)
    return "".join(SPARK[min(len(SPARK) - 1, round(c / top * (len(SPARK) - 1)))] for c in counts)


class ExecutionsTable(VimTable):
    """Recent executions. The app owns fetching; this widget owns showing."""

    HELP_GROUPS = {"mark": "executions", "toggle_follow": "executions"}
    BINDINGS = [
        Binding("space", "mark", "Mark", show=False),
        Binding("F", "toggle_follow", "Follow newest", show=False),
    ]

    def __init__(self, *, show_clocks: bool = True, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.show_clocks = show_clocks
        self.known: dict[str, ExecutionRow] = {}
        self.filter = ExecutionFilter()
        self.wide = False
        self.columns_shown: tuple[str, ...] = COLUMNS
        self.follow = True
        self.marked: set[str] = set()
        self.stale_since: datetime | None = None
        self._shown: dict[str, tuple[object, ...]] = {}
        self._placing = False  # the cursor moved by the table itself, not by the user
        self._many_changes = False

    def on_mount(self) -> None:
        self._build_columns()
        self._subtitle()

    def _build_columns(self) -> None:
        self.clear(columns=True)
        self._shown.clear()
        for name in self.columns_shown:
            width = FIXED.get(name) or ((37 if self.wide else 13) if name == "id" else None)
            if name == "status":
                width = 11 if self.wide else 9  # "✗ cancelled" / "cancelled"
            if name == "step" and "started" not in self.columns_shown:
                width = NARROW_STEP  # at 80 columns the step gives way so "took" stays whole
            self.add_column("" if name == "mark" else name, key=name, width=width)

    def on_resize(self) -> None:
        wide = self.size.width >= WIDE_AT
        shown = COLUMNS if self.size.width >= STARTED_AT else tuple(c for c in COLUMNS if c != "started")
        if wide != self.wide or shown != self.columns_shown:
            selected = self.selected_id
            self.wide, self.columns_shown = wide, shown
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

    def chosen_ids(self) -> list[str]:
        """What a bulk action acts on: the marked rows, else the selected one."""
        marked = [i for i in self.marked if i in self.known]
        if marked:
            return sorted(marked)
        return [self.selected_id] if self.selected_id else []

    def merge(self, rows: list[ExecutionRow], complete: bool) -> None:
        """Only rows that differ from what is known are redrawn."""
        incoming = {row.execution_id: row for row in rows}
        gone = [i for i in self.known if i not in incoming] if complete else []
        for execution_id in gone:
            del self.known[execution_id]
            self.marked.discard(execution_id)
        changed = [i for i, row in incoming.items() if self.known.get(i) != row]
        self.known.update(incoming)
        if changed or gone:
            self._sync_view(only=set(changed) | set(gone))

    def set_filter(self, new_filter: ExecutionFilter) -> None:
        self.filter = new_filter
        self._sync_view()

    def set_stale(self, since: datetime | None) -> None:
        """Rows no longer refreshed (Prefect unreachable) are marked as such."""
        if (since is None) == (self.stale_since is None):
            return
        self.stale_since = since
        self.set_class(since is not None, "-stale")
        self._subtitle()

    def tick(self) -> None:
        """Durations of active rows grow: redraw just those cells."""
        self._sync_view(only=set(self.active_ids))

    # actions -------------------------------------------------------------------------
    def action_mark(self) -> None:
        selected = self.selected_id
        if selected is None:
            return
        self.marked.symmetric_difference_update({selected})
        self._sync_view(only={selected})
        self._subtitle()
        if self.cursor_row < self.row_count - 1:
            self.move_cursor(row=self.cursor_row + 1)

    def clear_marks(self) -> bool:
        if not self.marked:
            return False
        was, self.marked = self.marked, set()
        self._sync_view(only=was)
        self._subtitle()
        return True

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        if self.follow and self.row_count:
            self._place(0)
        self._subtitle()

    def on_data_table_row_highlighted(self, event: VimTable.RowHighlighted) -> None:
        if not self._placing and event.cursor_row > 0 and self.follow:
            self.follow = False  # the user went down the list: stay where they are
            self._subtitle()
        elif not self._placing and event.cursor_row == 0 and not self.follow:
            self.follow = True
            self._subtitle()

    def _place(self, row: int, scroll: bool = True) -> None:
        self._placing = True
        try:
            self.move_cursor(row=row, animate=False, scroll=scroll)
        finally:
            self._placing = False

    def _subtitle(self) -> None:
        parts = ["following newest" if self.follow else "follow off (F)"]
        if self.marked:
            parts.append(f"{len(self.marked)} marked")
        if self.stale_since is not None:
            parts.append(f"STALE since {clock(self.stale_since, self.show_clocks)}")
        self.border_subtitle = " · ".join(parts)

    @property
    def empty_message(self) -> str:
        if self.row_count:
            return ""
        if self.known:
            return f"no execution matches {self.filter.describe()} (esc in the search or ctrl+p Clear filters)"
        return "no executions yet: select a workflow and press l to launch one"

    # ---------------------------------------------------------------------------------
    def _cells(self, row: ExecutionRow) -> tuple[object, ...]:
        ident = IdCell(short_id(row.execution_id, self.wide))
        ident.order = (row.created_at or row.started_at or EPOCH, row.execution_id)
        status = status_text(row.status) if self.wide else Text(row.status, style=STATUS_STYLE.get(row.status, ""))
        cells = {
            "mark": Text("●", style="bold magenta") if row.execution_id in self.marked else "",
            "id": ident,
            "workflow": f"{row.workflow_id}@{row.version}",
            "mode": row.mode,
            "status": status,
            "step": row.current_step or "",
            "started": clock(row.started_at, self.show_clocks),
            "took": duration(row.started_at, row.ended_at, self.show_clocks),
        }
        return tuple(cells[name] for name in self.columns_shown)

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
        self._many_changes = len(candidates) > REBUILD_AFTER
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
                    for name, old, new in zip(self.columns_shown, before, cells, strict=True):
                        if old != new or (name == "id" and getattr(old, "order", None) != getattr(new, "order", None)):
                            column = self.columns[ColumnKey(name)]
                            grows = name in GROWS and column.auto_width and _width(new) > column.content_width
                            self.update_cell(execution_id, name, new, update_width=grows)
                self._shown[execution_id] = cells
            if added:
                self.sort("id", key=lambda cell: cell.order, reverse=True)
                self._keep_cursor(keep, keep_index)

    def update_cell(
        self, row_key: RowKey | str, column_key: ColumnKey | str, value: object, *, update_width: bool = False
    ) -> None:
        """DataTable's, but repainting only the cell: a duration ticking every second must
        not redraw the whole table (that was ~6 KB/s to the terminal for one running row)."""
        if update_width:
            super().update_cell(row_key, column_key, value, update_width=True)
            return
        row = RowKey(row_key) if isinstance(row_key, str) else row_key
        column = ColumnKey(column_key) if isinstance(column_key, str) else column_key
        if row not in self._row_locations or column not in self._column_locations:
            raise CellDoesNotExist(f"No cell exists for row_key={row!r}, column_key={column!r}.")
        self._data[row][column] = value
        self._update_count += 1  # the row caches are keyed by it (Textual's own update_cell does this)
        if self._many_changes:  # one repaint of the table costs less than hundreds of cell regions
            self.refresh()
        else:
            self.refresh_coordinate(self.get_cell_coordinate(row, column))

    def _keep_cursor(self, keep: str | None, keep_index: int) -> None:
        if self.follow and self.row_count:
            self._place(0)
        elif keep is not None and keep in self._shown:
            self._place(self.get_row_index(keep), scroll=False)
        elif self.row_count:
            self._place(min(keep_index, self.row_count - 1))

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
            self._keep_cursor(keep, keep_index)
