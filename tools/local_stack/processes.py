"""The stack's processes: spawned in a session of their own, recognised by pid and command line,
stopped by process group. Standard library only: ``make down`` runs without the venv."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tools.local_stack.paths import REPO


def is_ours(entry: dict[str, Any]) -> bool:
    """The recorded pid still runs the command we started (a pid can be reused by another)."""
    pid = int(entry["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process now
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():  # no /proc (macOS): the pid alone has to do
        return True
    try:
        running = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    marker = entry["marker"].encode()
    return any(marker in part for part in running)


def spawn(name: str, args: list[str], state: Path, marker: str) -> dict[str, Any]:
    log = state / f"{name}.log"
    with open(log, "wb") as out:  # the child keeps its own handle
        proc = subprocess.Popen(
            args,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: 'make up' returns and the stack runs on; down stops the whole group.
            start_new_session=True,
            env={**os.environ, "AZURITE_ACCOUNTS": ""},
        )
    return {"pid": proc.pid, "marker": marker, "log": str(log)}


def stop(entry: dict[str, Any], timeout: float = 10.0) -> None:
    if not is_ours(entry):
        return
    pid = int(entry["pid"])
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)  # the group: npm's azurite wrapper has a node child
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.05)


def alive(pid: int) -> bool:
    # Our own child that exited is a zombie until reaped; reap it if it is ours to reap.
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True
