"""Fixtures of the real local stand-ins: storage emulator, SendGrid simulator, Key Vault stand-in.

Loaded by tests/integration/conftest.py and tests/contract/conftest.py only, so that unit tests
never import tools/ or trustme. The storage emulator starts once per session; every test gets its
own containers and its own simulator, so tests never see each other's state.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.storage.blob import BlobServiceClient

from shared.adapters.jobs import queue_client
from shared.entrypoints import service
from shared.run.runtime import Runtime
from shared.settings import Settings
from tests.conftest import API_KEY, Workspace, make_runtime
from tools.standins import sendgrid as sendgrid_simulator
from tools.standins.keyvault import KeyVaultStandIn
from tools.standins.storage import Emulator


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
