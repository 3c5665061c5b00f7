"""Measuring a run: the export CLI in a process of its own (wall time, peak RSS and when it came),
the SendGrid simulator it talks to, and the simulator's request log by kind."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from azure.storage.blob import BlobServiceClient

from tools.standins.storage import Emulator

REPO = Path(__file__).resolve().parent.parent.parent
KEY = "bench-key-for-the-local-simulator"
# The simulator's /__sim/ endpoints want its control key (header CONTROL_HEADERS); new each bench.
SIM_CONTROL_KEY = secrets.token_urlsafe(16)
CONTROL_HEADERS = {"X-Simulator-Key": SIM_CONTROL_KEY}


class PeakSampler:
    """When a process's resident memory peaked: /proc sampled every 50 ms (Linux; elsewhere
    nothing is known), to tell which stage of a run holds the peak."""

    def __init__(self, pid: int):
        self.pid, self.peak_mb = pid, 0.0
        self.peak_at: float | None = None
        self._done = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while not self._done.wait(0.05):
            try:
                line = next(x for x in status.read_text().splitlines() if x.startswith("VmRSS:"))
            except (OSError, StopIteration):
                return
            rss = int(line.split()[1]) / 1024
            if rss > self.peak_mb:
                self.peak_mb, self.peak_at = rss, time.monotonic() - self._started

    def stop(self) -> str:
        self._done.set()
        self._thread.join()
        return "" if self.peak_at is None else f" (sampled peak {self.peak_mb:.0f} MB at {self.peak_at:.1f}s)"


@dataclass(frozen=True)
class CliRun:
    """One export run by the CLI: its record, wall seconds, peak RSS in MB, and when the sampled
    peak came (text, empty where not sampled)."""

    record: dict[str, Any]
    wall: float
    rss: float
    when: str


def run_cli(env: dict[str, str], *args: str, destination: str = "bench", cwd: Path = REPO) -> CliRun:
    """Run the export CLI. Its peak RSS is its own, from the wait that reaps it: RUSAGE_CHILDREN
    would give the largest of every child so far."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shared", "export", destination, *args], env=env, cwd=cwd, stdout=out, stderr=err
        )
        sampler = PeakSampler(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        when = sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        if proc.returncode not in (0, 3):
            sys.stderr.write(err.read().decode(errors="replace")[-4000:])
            raise SystemExit(f"the export failed (exit {proc.returncode})")
        return CliRun(json.loads(out.read()), wall, usage.ru_maxrss / 1024, when)


def cli_env(connection_string: str, sim_url: str, **extra: str) -> dict[str, str]:
    """The environment of an export run by the CLI against the emulator and the simulator."""
    return {
        **os.environ,
        "EXPORT_STORAGE": connection_string,
        "AzureWebJobsStorage": connection_string,
        "SECRETS_SOURCE": "environment",
        "SENDGRID_SECRET_SENDGRID_API_KEY": KEY,
        "SENDGRID_API_BASE_URL": sim_url,
        **extra,
    }


def start_simulator() -> tuple[subprocess.Popen[str], str]:
    """The SendGrid simulator in its own process (its work does not share the export's core)."""
    sim = subprocess.Popen(
        [sys.executable, "-m", "tools.standins.sendgrid", "--port", "0", "--job-delay", "0.2"],
        cwd=REPO,
        # Keys through the environment, not the command line, where ps shows them.
        env={**os.environ, "SENDGRID_SIMULATOR_API_KEY": KEY, "SENDGRID_SIMULATOR_CONTROL_KEY": SIM_CONTROL_KEY},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sim.stdout is not None
    return sim, f"http://127.0.0.1:{sim.stdout.readline().strip().split('=')[1]}"


@contextlib.contextmanager
def stand_alone_storage() -> Iterator[tuple[BlobServiceClient, str]]:
    """A storage emulator of its own for a bench run alone (``python -m tools.bench.paced``, ...):
    its segments container, an empty destinations.json, and its connection string; stopped after."""
    emulator = Emulator().start()
    try:
        service = BlobServiceClient.from_connection_string(emulator.connection_string)
        service.create_container("segments")
        service.create_container("sendgrid-exports").upload_blob("destinations.json", b'{"destinations": []}')
        yield service, emulator.connection_string
    finally:
        emulator.stop()


def sim_requests(sim_url: str, since: int = 0) -> list[dict[str, Any]]:
    """The simulator's request log, from the ``since``-th request."""
    answer = requests.get(f"{sim_url}/__sim/requests", headers=CONTROL_HEADERS, timeout=60)
    return list(answer.json()["requests"][since:])


def requests_by_kind(sim_url: str, since: int = 0) -> dict[str, int]:
    """The simulator's requests (from the ``since``-th), by kind."""
    found: dict[str, int] = {}
    for entry in sim_requests(sim_url, since):
        kind = _kind_of(entry["method"], entry["path"])
        found[kind] = found.get(kind, 0) + 1
    return found


def _kind_of(method: str, path: str) -> str:
    if path.startswith("/v3/marketing/contacts/imports/"):
        return "polls"
    if path == "/v3/marketing/contacts/imports":
        return "imports"
    if path.startswith("/__sim/uploads/"):
        return "uploads"
    if (method, path) == ("PUT", "/v3/marketing/contacts"):
        return "upserts"
    if path == "/v3/marketing/field_definitions":
        return "field definitions"
    return "other (lists, scopes)"
