"""Functions the action-step tests call by reference ("actions_fixture:...")."""

from __future__ import annotations

import asyncio
import threading


def add(a: int, b: int = 1) -> dict:
    return {"sum": a + b, "thread": threading.current_thread().name}


async def greet(name: str) -> str:
    await asyncio.sleep(0)
    return f"hello {name}"


def pair() -> tuple:
    return (1, "two")


def not_json() -> object:
    return {"when": object()}


def explode(reason: str) -> None:
    raise RuntimeError(f"boom: {reason}")


def wrong_type() -> None:
    return len(5)  # a TypeError from inside the action, not from its arguments


NOT_A_FUNCTION = 42
