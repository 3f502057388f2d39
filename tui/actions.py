"""What the keys do to executions: launch, re-run (same or edited input) and jump to the new
execution, cancel (confirmed), in bulk over the marked rows, copy the id, open Prefect's UI.

A mixin of the App (tui/app.py): every call to the engine runs in a worker and reports back
through a message or a notification; widgets are touched only in handlers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from textual import work
from textual.message import Message
from textual.notifications import SeverityLevel

from flowdeck.tui.client import Client, ClientError, ExecutionDetail, ExecutionRow, WorkflowVersion
from flowdeck.tui.detail import DetailScreen
from flowdeck.tui.dialogs import ConfirmScreen
from flowdeck.tui.launch import LaunchRequest, LaunchScreen
from flowdeck.tui.memory import LaunchMemory

if TYPE_CHECKING:
    from flowdeck.tui.executions import ExecutionsTable

__all__ = ["ExecutionActions", "Launched"]

MAX_BULK = 200  # one bulk action acts on at most this many executions


class Launched(Message):
    def __init__(self, request: LaunchRequest, body: dict[str, Any], jump: bool) -> None:
        super().__init__()
        self.request = request
        self.body = body
        self.jump = jump  # open the new execution's detail (a re-run does)


class ExecutionActions:
    client: Client
    table: ExecutionsTable
    show_clocks: bool
    memory: LaunchMemory

    # launch ---------------------------------------------------------------------------
    def launch(
        self,
        version: WorkflowVersion,
        *,
        mode: str | None = None,
        input_data: dict[str, Any] | None = None,
        jump: bool = False,
    ) -> None:
        versions = [v for v in self.client.workflows() if v.workflow_id == version.workflow_id]
        screen = LaunchScreen(
            self.client,
            versions,
            version,
            mode=mode,
            input_data=input_data,
            remembered=self.memory.last(version.workflow_id),
        )

        def chosen(request: LaunchRequest | None) -> None:
            if request is not None:
                self.start(request, jump=jump)

        self.push_screen(screen, chosen)  # type: ignore[attr-defined]

    @work(group="launch", exit_on_error=False)
    async def start(self, request: LaunchRequest, jump: bool = False) -> None:
        label = f"{request.workflow_id}@{request.version}"
        try:
            if request.mode == "sync":
                self.notify(f"running {label} (sync)…", timeout=2)  # type: ignore[attr-defined]
                body = await self.client.run_sync(request.workflow_id, request.version, request.input_data)
            else:
                body = await self.client.submit(request.workflow_id, request.version, request.input_data)
        except ClientError as error:
            problems = "".join(f"\n{p.field}: {p.message}" for p in error.details)
            self.notify(error.message + problems, title=f"Cannot run {label}", severity="error", timeout=8)  # type: ignore[attr-defined]
            return
        self.memory.remember(request.workflow_id, request.input_data)
        self.post_message(Launched(request, body, jump))  # type: ignore[attr-defined]

    def on_launched(self, message: Launched) -> None:
        body, request = message.body, message.request
        execution_id = body.get("execution_id", "")
        title = f"{request.workflow_id}@{request.version}"
        if request.mode == "async":
            now = datetime.now(UTC)
            row = ExecutionRow(
                execution_id, request.workflow_id, str(request.version), "async", body.get("status", "pending"),
                None, now, None, None,
            )  # fmt: skip
            self.table.merge([row], complete=False)
            self.table.focus()  # the new execution has the cursor (follow newest): enter opens it
            self.notify(execution_id, title=f"{title} submitted")  # type: ignore[attr-defined]
            self.nudge()  # type: ignore[attr-defined]
            if message.jump:
                self.open_execution(execution_id)
            return
        severity: SeverityLevel = "error" if body.get("status") == "failed" else "information"
        self.notify(f"{body.get('status')} {execution_id}", title=title, severity=severity)  # type: ignore[attr-defined]
        self.open_execution(execution_id, initial=body)

    # opening ----------------------------------------------------------------------------
    def open_execution(self, execution_id: str, initial: dict[str, Any] | None = None) -> None:
        screen = DetailScreen(self.client, execution_id, show_clocks=self.show_clocks, initial=initial)
        if isinstance(self.screen, DetailScreen):  # type: ignore[attr-defined]
            self.switch_screen(screen)  # type: ignore[attr-defined]  # a re-run replaces the old detail
        else:
            self.push_screen(screen)  # type: ignore[attr-defined]

    # cancel -----------------------------------------------------------------------------
    def confirm_cancel(self, execution_ids: list[str]) -> None:
        ids = execution_ids[:MAX_BULK]
        if not ids:
            self.notify("no execution selected", severity="warning")  # type: ignore[attr-defined]
            return
        what = ids[0] if len(ids) == 1 else f"{len(ids)} executions"
        detail = "" if len(ids) == 1 else ", ".join(i[:13] for i in ids[:6]) + (" …" if len(ids) > 6 else "")

        def answered(yes: bool | None) -> None:
            if yes:
                self.table.clear_marks()
                self._cancel(ids)

        self.push_screen(ConfirmScreen(f"Cancel {what}? No further step runs.", detail), answered)  # type: ignore[attr-defined]

    @work(group="cancel", exit_on_error=False)
    async def _cancel(self, execution_ids: list[str]) -> None:
        done, failed = 0, []
        for execution_id in execution_ids:
            try:
                await self.client.cancel(execution_id)
                done += 1
            except ClientError as error:
                failed.append(f"{execution_id[:13]}: {error.message}")
        if failed:
            self.notify("\n".join(failed[:5]), title=f"Cannot cancel {len(failed)}", severity="error")  # type: ignore[attr-defined]
        if done:
            self.notify(f"cancelled {done}" if done > 1 else f"cancelled {execution_ids[0]}", title="Cancel")  # type: ignore[attr-defined]
        self.nudge()  # type: ignore[attr-defined]

    # re-run -----------------------------------------------------------------------------
    def rerun_execution(self, execution_id: str, detail: ExecutionDetail | None, edit: bool = False) -> None:
        self._rerun(execution_id, detail, edit)

    def confirm_rerun(self, execution_ids: list[str]) -> None:
        ids = execution_ids[:MAX_BULK]
        if len(ids) <= 1:
            if ids:
                self.rerun_execution(ids[0], None)
            else:
                self.notify("no execution selected", severity="warning")  # type: ignore[attr-defined]
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.table.clear_marks()
                for execution_id in ids:
                    self._rerun(execution_id, None, False, jump=False)

        self.push_screen(ConfirmScreen(f"Re-run {len(ids)} executions with the same input?"), answered)  # type: ignore[attr-defined]

    @work(group="rerun", exit_on_error=False)
    async def _rerun(self, execution_id: str, detail: ExecutionDetail | None, edit: bool, jump: bool = True) -> None:
        try:
            detail = detail or await self.client.detail(execution_id)
        except ClientError as error:
            self.notify(error.message, title="Cannot re-run", severity="error")  # type: ignore[attr-defined]
            return
        row = detail.row
        if not row.version.isdigit():
            self.notify(f"version {row.version!r} is not a number", title="Cannot re-run", severity="error")  # type: ignore[attr-defined]
            return
        mode = "sync" if row.mode == "sync" else "async"
        if edit:
            same = [v for v in self.client.workflows() if v.workflow_id == row.workflow_id]
            version = next((v for v in same if v.version == int(row.version)), None)
            if version is None:
                self.notify(f"{row.workflow_id} v{row.version} is no longer defined", severity="error")  # type: ignore[attr-defined]
                return
            self.launch(version, mode=mode, input_data=detail.input_data or {}, jump=True)
            return
        self.start(LaunchRequest(row.workflow_id, int(row.version), mode, detail.input_data or {}), jump=jump)

    # small ones ---------------------------------------------------------------------------
    def copy_id(self, execution_id: str) -> None:
        self.copy_to_clipboard(execution_id)  # type: ignore[attr-defined]
        self.notify(f"copied {execution_id}")  # type: ignore[attr-defined]

    def open_prefect(self, execution_id: str) -> None:
        url = self.client.prefect_url(execution_id)
        if url:
            self.open_url(url)  # type: ignore[attr-defined]
            self.notify(url, title="Opening the Prefect UI")  # type: ignore[attr-defined]
        else:
            self.notify("no Prefect UI for this execution", severity="warning")  # type: ignore[attr-defined]
