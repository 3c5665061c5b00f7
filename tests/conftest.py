"""Fixtures: the real local stand-ins (storage emulator, SendGrid simulator, Key Vault stand-in).

The storage emulator starts once per session; every test gets its own containers and its own
simulator, so tests never see each other's state.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.storage.blob import BlobServiceClient, ContainerClient
from azure.storage.queue import QueueClient

from shared.adapters.jobs import queue_client
from shared.adapters.retry import RetryPolicy
from shared.adapters.sendgrid import SendGridClient
from shared.bootstrap import build_runtime
from shared.entrypoints import service
from shared.run.runtime import Runtime
from shared.settings import Settings
from tools import sendgrid_simulator
from tools.keyvault_standin import KeyVaultStandIn
from tools.storage_emulator import Emulator

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


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator() as running:
        yield running


@pytest.fixture(scope="session")
def blob_service(emulator: Emulator) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(emulator.connection_string)


class Simulator:
    def __init__(self) -> None:
        self.state = sendgrid_simulator.SimState([API_KEY], job_delay=0.05)
        self.server = sendgrid_simulator.start(self.state)
        self.url = self.server.base_url

    def fault(self, **spec: Any) -> None:
        requests.post(f"{self.url}/__sim/faults", json=spec, timeout=5).raise_for_status()

    def config(self, **spec: Any) -> None:
        requests.post(f"{self.url}/__sim/config", json=spec, timeout=5).raise_for_status()

    def snapshot(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/__sim/state", timeout=10).json()

    def members(self, list_name: str) -> list[str]:
        for item in self.snapshot()["lists"]:
            if item["name"] == list_name:
                return list(item["members"])
        raise AssertionError(f"no list named {list_name!r} in the simulator")

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    sim = Simulator()
    yield sim
    sim.stop()


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


@pytest.fixture
def workspace(emulator: Emulator, blob_service: BlobServiceClient, simulator: Simulator) -> Iterator[Workspace]:
    suffix = secrets.token_hex(4)
    segments = blob_service.create_container(f"segments-{suffix}")
    exports = blob_service.create_container(f"exports-{suffix}")
    queue_name = f"jobs-{suffix}"
    env = {
        "EXPORT_QUEUE": queue_name,
        "EXPORT_STORAGE": emulator.connection_string,
        "AzureWebJobsStorage": emulator.connection_string,
        "SEGMENTS_CONTAINER": segments.container_name,
        "EXPORTS_CONTAINER": exports.container_name,
        "SECRETS_SOURCE": "environment",
        "SENDGRID_SECRET_SENDGRID_API_KEY": API_KEY,
        "SENDGRID_API_BASE_URL": simulator.url,
    }
    queue = queue_client(Settings.from_env(env).host_storage, queue_name)
    queue.create_queue()
    yield Workspace(emulator.connection_string, segments, exports, queue, env)
    segments.delete_container()
    exports.delete_container()
    queue.delete_queue()


def make_runtime(workspace: Workspace, settings: Settings | None = None, **overrides: Any) -> Runtime:
    """Real edges over the test's containers, tuned by ``overrides``; SendGrid calls use short (real)
    retry delays."""
    runtime = build_runtime(Settings.from_env(workspace.env), environ=workspace.env)
    if settings is not None:
        runtime.settings = settings
    runtime.edges.sendgrid = lambda base_url, key: SendGridClient(base_url, key, policy=FAST_RETRY, timeout=(2.0, 5.0))
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


@pytest.fixture
def keyvault() -> Iterator[KeyVaultStandIn]:
    vault = KeyVaultStandIn({"sendgrid-api-key": API_KEY}).start()
    yield vault
    vault.stop()


@pytest.fixture
def app_runtime(workspace: Workspace) -> Iterator[Runtime]:
    """The Functions app's runtime, pointed at the test's workspace (as the host's process builds it)."""
    runtime = make_runtime(workspace)
    service.reset_app_runtime(runtime)
    yield runtime
    service.reset_app_runtime()
