"""In-file checks of time and inputs: waits against the workflow's limits, triggers' cron
expressions, time zones and input, and the input schema itself."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from jsonschema import Draft202012Validator

from flowdeck.definition import input_schema
from flowdeck.definition.durations import DurationTooLong, format_seconds, parse_duration, wait_duration_seconds
from flowdeck.definition.model import DEFAULT_SYNC_TIMEOUT, DEFAULT_TIMEOUT, MAX_SYNC_TIMEOUT
from flowdeck.definition.validation.places import _last_index
from flowdeck.definition.validation.walk import _CheckerBase, _StepInfo
from flowdeck.definition.yaml_source import DataPath


class _TimingChecks(_CheckerBase):
    def _check_duration_bounds(self) -> None:
        """Every duration within MAX_DURATION_SECONDS (the schema checks their form only)."""
        places: list[tuple[DataPath, Any]] = [
            ((key,), self.data[key]) for key in ("timeout", "sync_timeout") if key in self.data
        ]
        retries = self.data.get("retries")
        if isinstance(retries, dict) and "delay" in retries:
            places.append((("retries", "delay"), retries["delay"]))
        for step in self.steps:
            for key in ("timeout", "duration"):
                if key in step.data:
                    places.append((step.path + (key,), step.data[key]))
        for path, value in places:
            try:
                seconds = (wait_duration_seconds if path[-1] == "duration" else parse_duration)(value)
            except DurationTooLong as error:
                self.error(path, f"{error}; write a shorter one")
            except ValueError:
                pass  # not a duration at all: the schema reports it
            else:
                if path == ("sync_timeout",) and seconds > MAX_SYNC_TIMEOUT:
                    self.error(
                        path,
                        f"sync_timeout {format_seconds(seconds)} is longer than {format_seconds(MAX_SYNC_TIMEOUT)}, "
                        "the longest a sync caller may be kept waiting; run longer work in async mode",
                    )

    def _check_wait(self, step: _StepInfo) -> None:
        if "duration" not in step.data:
            return
        try:
            seconds = wait_duration_seconds(step.data["duration"])
        except ValueError:
            return  # the schema reports it
        path = step.path + ("duration",)
        sync_limit = self._duration("sync_timeout", DEFAULT_SYNC_TIMEOUT)
        timeout = self._duration("timeout", DEFAULT_TIMEOUT)
        if seconds > timeout:
            self.warning(
                path,
                f"{step.label} waits {format_seconds(seconds)}, longer than the workflow "
                f"timeout ({format_seconds(timeout)}): every execution will time out during "
                f"the wait; raise 'timeout'",
            )
        elif seconds > sync_limit:
            self.warning(
                path,
                f"{step.label} waits {format_seconds(seconds)}, longer than the sync limit "
                f"({format_seconds(sync_limit)}): sync calls hand off to async before it "
                f"ends; call this workflow in async mode",
            )

    def _duration(self, key: str, default: float) -> float:
        try:
            return parse_duration(self.data[key]) if key in self.data else default
        except ValueError:
            return default

    # ---- input schema and triggers

    def _check_input_schema_and_triggers(self) -> None:
        schema = self.data.get("input")
        input_validator: Any = None
        if isinstance(schema, dict):
            meta = _meta_schema_validator()
            schema_errors = list(meta.iter_errors(schema))
            for error in schema_errors:
                where = "/".join(str(part) for part in error.absolute_path)
                self.error(
                    ("input",) + tuple(error.absolute_path),
                    f"the input schema is not a valid JSON Schema{' at ' + where if where else ''}: {error.message}",
                )
            refused = [] if schema_errors else input_schema.input_schema_problems(schema)
            for where_in_schema, message in refused:
                self.error(("input",) + where_in_schema, f"the input schema: {message}")
            if not schema_errors and not refused:
                input_validator = input_schema.input_validator(schema)
        triggers = self.data.get("triggers")
        for index, trigger in enumerate(triggers if isinstance(triggers, list) else []):
            if isinstance(trigger, dict):
                self._check_trigger(trigger, ("triggers", index), input_validator)

    def _check_trigger(self, trigger: dict[str, Any], path: DataPath, input_validator: Any) -> None:
        label = f"trigger {_last_index(path) + 1}"
        cron = trigger.get("cron")
        if isinstance(cron, str) and cron.strip() and not _cron_is_valid(cron):
            self.error(
                path + ("cron",),
                f"{label} has an invalid cron expression {cron!r}; use five fields "
                f"'minute hour day-of-month month day-of-week', e.g. '0 9 * * 1-5'",
            )
        zone = trigger.get("timezone")
        if isinstance(zone, str) and not _zone_is_valid(zone):
            self.error(
                path + ("timezone",),
                f"{label} has an unknown time zone {zone!r}; use an IANA name such as UTC or Europe/Paris",
            )
        trigger_input = trigger.get("input", {})
        if input_validator is not None and isinstance(trigger_input, dict):
            for error in input_validator.iter_errors(trigger_input):
                field_name = ".".join(str(part) for part in error.absolute_path) or "input"
                self.error(
                    path + ("input",) + tuple(error.absolute_path),
                    f"{label} input does not satisfy the workflow's input schema: {field_name}: {error.message}",
                )


@lru_cache(maxsize=1)
def _meta_schema_validator() -> Draft202012Validator:
    return Draft202012Validator(Draft202012Validator.META_SCHEMA)


# Prefect (croniter) also takes a sixth field, seconds: `* * * * * *` ran every second.
# The schema's pattern refuses any other number of fields (and reports it); this check
# then leaves such an expression alone instead of reporting it twice.
CRON_FIELDS = 5


def _cron_is_valid(cron: str) -> bool:
    if len(cron.split()) != CRON_FIELDS:
        return True  # the schema reports it
    try:
        return bool(croniter.is_valid(cron))
    except Exception:  # croniter raises assorted errors for odd input; any means invalid
        return False


def _zone_is_valid(zone: str) -> bool:
    try:
        ZoneInfo(zone)
    except Exception:  # ZoneInfoNotFoundError, ValueError for paths, ...: all mean unknown
        return False
    return True
