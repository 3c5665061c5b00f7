"""The stack's ports: the fixed ones, or free ones with ``--free-ports``; is one listening."""

from __future__ import annotations

import socket

# Fixed, so that what points at them (func start, Storage Explorer, test.http) keeps working.
DEFAULT_PORTS = {"blob": 10000, "queue": 10001, "table": 10002, "sendgrid": 8787, "vault": 8443, "token": 8444}


def pick_ports(free: bool, previous: dict[str, int] | None = None) -> dict[str, int]:
    """The fixed ports; with ``free``, the previous ones where still free, else any the system gives."""
    from tools.local_ports import free_port, holder, port_free

    ports: dict[str, int] = {}
    for name, default in DEFAULT_PORTS.items():
        # --free-ports never takes the fixed ones: a `make up` may want them later.
        port = (previous or {}).get(name, 0) if free else default
        if port and port_free(port) and port not in ports.values():
            ports[name] = port
        elif free:
            while (port := free_port()) in ports.values():
                pass
            ports[name] = port
        else:
            raise SystemExit(
                f"port {port} (for {name}) on 127.0.0.1 is taken by {holder(port)}. Stop that process, or start "
                "the stack on free ports instead: make up STACK_OPTS=--free-ports"
            )
    return ports


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
