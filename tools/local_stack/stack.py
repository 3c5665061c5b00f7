"""The recorded stack as a whole: is it whole, stop it (``down``), say what runs (``status``).

Standard library only: ``make down`` and ``make status`` run without the venv.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools.local_stack.ports import listening
from tools.local_stack.processes import is_ours, stop
from tools.local_stack.state import AZURITE_PID_FILE, STACK_FILE, read_stack


def whole(stack: dict[str, Any]) -> bool:
    ports = stack.get("ports", {})
    processes = stack["processes"]
    return (
        set(processes) == {"azurite", "sendgrid", "vault"}
        and all(is_ours(p) for p in processes.values())
        and all(listening(int(port)) for port in ports.values())
    )


def down(state: Path, quiet: bool = False) -> int:
    stack = read_stack(state)
    if stack is None:
        if not quiet:
            print("No local stack is running (nothing recorded in " + str(state) + ").")
        return 0
    for name, entry in stack["processes"].items():
        stop(entry)
        if not quiet:
            print(f"stopped {name} (pid {entry['pid']})")
    if stack.get("data"):
        (Path(stack["data"]) / AZURITE_PID_FILE).unlink(missing_ok=True)
    (state / STACK_FILE).unlink(missing_ok=True)
    return 0


def status(state: Path) -> int:
    stack = read_stack(state)
    if stack is None:
        print("not running")
        return 1
    for name, entry in stack["processes"].items():
        print(f"{name}: pid {entry['pid']} {'running' if is_ours(entry) else 'GONE'}")
    print("ports: " + ", ".join(f"{k} {v}" for k, v in stack["ports"].items()))
    return 0 if whole(stack) else 1
