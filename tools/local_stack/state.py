"""The state folder (``.localstack/``): the recorded stack, private files, one command at a time.

Standard library only: ``make down`` and ``make status`` run without the venv.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STACK_FILE = "stack.json"
AZURITE_PID_FILE = ".azurite-pid.json"  # in the data folder: one Azurite per data folder


def read_stack(state: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state / STACK_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("processes"), dict) else None


def private_dir(path: Path) -> None:
    """0700: the stack's keys, its CA's key material and Azurite's contacts are this user's only."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)


def write_private(path: Path, text: str) -> None:
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


@contextlib.contextmanager
def locked(state: Path) -> Iterator[None]:
    """One up or down at a time on a state folder (two terminals, or make -j)."""
    import fcntl

    private_dir(state)
    with open(state / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
