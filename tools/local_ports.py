"""The local stack's ports: is one free to listen on, and if not, which process holds it.

The probe binds as the servers themselves do (SO_REUSEADDR), so a port left in TIME_WAIT by the
previous ``make up`` counts as free: without it, every restart moved to other ports. The holder is
found through ``/proc`` (Linux: the listening socket's inode in ``/proc/net/tcp``, then the process
with that inode among its descriptors), else ``ss -ltnp``, else not named.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

_LISTEN = "0A"  # the TCP state LISTEN in /proc/net/tcp


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def holder(port: int) -> str:
    """Who listens on ``port``: 'pid 123 (node .../azurite ...)', or a sentence saying it is unknown."""
    found = _holder_from_proc(port) or _holder_from_ss(port)
    return found or "a process this user cannot see (another user's, or outside /proc)"


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def _holder_from_proc(port: int) -> str | None:
    inodes = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not inodes:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return f"pid {pid} ({command_line(int(pid))})"
    return None


def _holder_from_ss(port: int) -> str | None:
    ss = shutil.which("ss")
    if ss is None:
        return None
    try:
        out = subprocess.run(
            [ss, "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'users:\(\("([^"]+)",pid=(\d+)', out)
    return f"pid {match.group(2)} ({match.group(1)})" if match else None


def command_line(pid: int, width: int = 120) -> str:
    try:
        parts = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "command unknown"
    text = " ".join(p.decode(errors="replace") for p in parts if p)
    return text if len(text) <= width else text[: width - 3] + "..."
