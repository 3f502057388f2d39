"""The secrets flowdeck generates for itself, one file each under FLOWDECK_HOME (mode 0600).

    prefect_auth_string()  the local Prefect server's credential: the server runs with it as
                           PREFECT_SERVER_API_AUTH_STRING, flowdeck's own processes send it
                           as PREFECT_API_AUTH_STRING (HTTP basic auth), the Prefect UI asks
                           for it as its password
    pin_key()              the key that signs the flow runs flowdeck creates
                           (flowdeck.execution.pinning), so a worker can tell them from a
                           run someone else created with a draft's tags; FLOWDECK_PIN_KEY
                           instead when set (one key for every machine of a cluster)

Each is made on first need, atomically (several processes may start at once: the first
link wins and the others read its file), and never printed or logged by flowdeck. A file
others can read is a leaked secret: it is refused with what to do, not silently used.

Nothing here imports prefect.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from flowdeck import settings
from flowdeck.errors import ConfigurationError

__all__ = ["pin_key", "pin_key_file", "prefect_auth_file", "prefect_auth_string"]

PREFECT_USER = "flowdeck"
MAX_SECRET_BYTES = 4096  # a longer file is not one flowdeck wrote


def prefect_auth_file() -> Path:
    return settings.home() / "prefect_auth"


def pin_key_file() -> Path:
    return settings.home() / "pin_key"


def prefect_auth_string() -> str:
    """`flowdeck:<random>`, Prefect's `user:password` form (the UI takes the whole line)."""
    return _secret(prefect_auth_file(), lambda: f"{PREFECT_USER}:{secrets.token_urlsafe(32)}")


def pin_key() -> bytes:
    """FLOWDECK_PIN_KEY when set (a cluster shares one), else this home's own file."""
    shared = settings.pin_key()
    if shared is not None:
        if len(shared) < settings.MIN_PIN_KEY_LENGTH:
            raise ConfigurationError(
                f"{settings.PIN_KEY_VARIABLE} is {len(shared)} characters; give at least "
                f"{settings.MIN_PIN_KEY_LENGTH} random ones "
                "(`python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        return shared.encode()
    return _secret(pin_key_file(), lambda: secrets.token_hex(32)).encode()


def _secret(path: Path, generate: Callable[[], str]) -> str:
    if not path.exists():
        try:
            _create(path, generate())
        except OSError as error:
            raise ConfigurationError(
                f"cannot create {path}: {error.strerror}; make FLOWDECK_HOME writable or point it elsewhere"
            ) from None
    return _read(path)


def _create(path: Path, value: str) -> None:
    """Write `value` to a private temporary file, then link it into place: a reader never
    sees a half-written secret, and when two processes race the first link wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(value + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process made it first: theirs is the secret
    finally:
        temporary.unlink(missing_ok=True)


def _read(path: Path) -> str:
    try:
        info = path.stat()
        if info.st_size > MAX_SECRET_BYTES:
            raise ConfigurationError(f"{path} is {info.st_size} bytes, not a flowdeck secret; remove it")
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigurationError(
                f"{path} can be read by other users (mode {stat.S_IMODE(info.st_mode):o}): "
                f"treat it as leaked, remove it and restart flowdeck (`flowdeck server stop`), "
                "or `chmod 600` it if that was intended"
            )
        value = path.read_text().strip()
    except OSError as error:
        raise ConfigurationError(f"cannot read {path}: {error.strerror}") from None
    if not value:
        raise ConfigurationError(f"{path} is empty; remove it and flowdeck makes a new one")
    return value
