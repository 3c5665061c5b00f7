"""What every test shares: the privacy check on log lines, test constants, how a test builds a runtime.

The fixtures that start the real local stand-ins live in tests/standins.py, loaded only by the
integration and contract tests: unit tests import neither tools/ nor trustme.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import ContainerClient
from azure.storage.queue import QueueClient

from shared.adapters.retry import RetryPolicy
from shared.adapters.sendgrid import ClientTuning, SendGridClient
from shared.bootstrap import build_runtime
from shared.run.runtime import Runtime
from shared.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SHARED_DIR = REPO.parent / "shared"
API_KEY = "test-api-key-" + "x" * 24
# Fast but real backoff for tests: the delays are waited, just short.
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_rate_limit_wait=3.0)


def shared_folder(*parts: str) -> Path:
    """A folder in ../shared; skipped with a reason where absent, a failure in CI."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        message = f"{path} is absent: it sits beside the repo in CI and on the team's machines"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: required)")
        pytest.skip(message)
    return path


EMAIL_IN_TEXT = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Names the privacy test puts through a whole run; no log line may ever hold them.
SENTINEL_NAMES = ("Zebedee", "Quixotica")


@pytest.fixture(autouse=True)
def no_personal_data_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every log line of every test, the SDKs' debug lines included: no address, name or key."""
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        message = record.getMessage()
        where = f"{record.name} logged"
        assert API_KEY not in message, f"{where} the API key"
        assert not EMAIL_IN_TEXT.search(message), f"{where} an email address: {EMAIL_IN_TEXT.sub('<email>', message)}"
        assert not any(name in message for name in SENTINEL_NAMES), f"{where} a person's name"


@dataclass
class Workspace:
    """Containers of one test in the emulator, and the settings that point at them."""

    connection_string: str
    segments: ContainerClient
    exports: ContainerClient
    queue: QueueClient
    env: dict[str, str] = field(default_factory=dict)

    def put_segment(self, name: str, data: bytes | str) -> None:
        self.segments.upload_blob(name, data.encode("utf-8") if isinstance(data, str) else data, overwrite=True)

    def put_destinations(self, *destinations: dict[str, Any]) -> None:
        self.exports.upload_blob("destinations.json", json.dumps({"destinations": list(destinations)}), overwrite=True)

    def read_export(self, name: str) -> bytes:
        return bytes(self.exports.download_blob(name).readall())

    def export_names(self, prefix: str = "") -> list[str]:
        return sorted(b.name for b in self.exports.list_blobs(name_starts_with=prefix))

    def take_jobs(self) -> list[str]:
        """Receive and delete every job on the queue (as the host would hand them to the worker)."""
        bodies = []
        for message in self.queue.receive_messages(max_messages=32, visibility_timeout=30):
            bodies.append(message.content)
            self.queue.delete_message(message)
        return bodies


def make_runtime(workspace: Workspace, settings: Settings | None = None, **overrides: Any) -> Runtime:
    """Real edges over the test's containers, tuned by ``overrides``; SendGrid calls use short (real)
    retry delays."""
    runtime = build_runtime(Settings.from_env(workspace.env), environ=workspace.env)
    if settings is not None:
        runtime.settings = settings
    runtime.edges.sendgrid = lambda base_url, key: SendGridClient(
        base_url, key, ClientTuning(policy=FAST_RETRY, timeout=(2.0, 5.0))
    )
    runtime.tuning = dataclasses.replace(runtime.tuning, **{"job_poll_interval": 0.02, **overrides})
    return runtime


def destination(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "newsletter",
        "enabled": True,
        "data_privacy_consent": True,
        "api_key_secret": "sendgrid-api-key",
        "list": {"name": "Newsletter", "create_if_missing": True},
        "segments": [{"path": "people.csv"}],
    }
    if "lists" in overrides:
        del base["list"]
    base.update(overrides)
    return base
