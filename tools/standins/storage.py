"""Start and stop the local Azure Storage emulator (blob and queue) for tests and the demo.

It comes from the npm registry, pinned in package.json (``npm ci`` installs it), listens on
127.0.0.1 only, and is always started with --disableTelemetry.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = REPO / "node_modules" / ".bin"
ACCOUNT = "devstoreaccount1"
# The emulator's fixed, public development key (documented by Microsoft; not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def azurite_command(blob_port: int, queue_port: int, table_port: int, location: str | None) -> list[str]:
    """The one place Azurite's command line is made: on 127.0.0.1 only, and never without
    --disableTelemetry. ``location`` None keeps its data in memory."""
    args = [str(BIN_DIR / "azurite"), "--disableTelemetry", "--skipApiVersionCheck", "--silent", "--loose"]
    if not Path(args[0]).exists():
        raise RuntimeError(f"{args[0]} is missing: run 'npm ci' (make install does) first.")
    for service, port in (("blob", blob_port), ("queue", queue_port), ("table", table_port)):
        args += [f"--{service}Host", "127.0.0.1", f"--{service}Port", str(port)]
    return args + (["--inMemoryPersistence"] if location is None else ["--location", location])


class Emulator:
    def __init__(self, in_memory: bool = True):
        self.blob_port, self.queue_port, self.table_port = free_port(), free_port(), free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="storage-emulator-")
        self._in_memory = in_memory
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = Path(self._dir.name) / "emulator.log"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{ACCOUNT};"
        )

    def start(self, timeout: float = 30.0) -> Emulator:
        location = None if self._in_memory else self._dir.name
        args = azurite_command(self.blob_port, self.queue_port, self.table_port, location)
        with open(self._log, "wb") as log:  # the child keeps its own handle
            self._proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "AZURITE_ACCOUNTS": ""},
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        for port in (self.blob_port, self.queue_port):
            while True:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"the storage emulator exited early: {self._log.read_text()[-2000:]}")
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(f"the storage emulator did not listen on {port} within {timeout}s") from None
                    time.sleep(0.1)
        return self

    def pause(self) -> None:
        """Freeze the emulator (SIGSTOP): calls get no answer, as from an unreachable account, and
        its data is still there after :meth:`resume`."""
        assert self._proc is not None, "the emulator is not running"
        os.killpg(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None, "the emulator is not running"
        os.killpg(self._proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None
        self._dir.cleanup()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
