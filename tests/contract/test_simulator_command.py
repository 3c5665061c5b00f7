"""``python -m tools.standins.sendgrid``: the simulator alone, as ``make up`` and the bench start it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import requests

from tests.conftest import API_KEY, REPO

COMMAND = [sys.executable, "-m", "tools.standins.sendgrid"]


def _environment() -> dict[str, str]:
    # No key from the environment: each test says where its keys come from.
    return {k: v for k, v in os.environ.items() if not k.startswith("SENDGRID_SIMULATOR_")}


def test_it_serves_on_loopback_with_its_keys_read_from_files(tmp_path):
    (tmp_path / "api-key").write_text(API_KEY + "\n")
    (tmp_path / "control-key").write_text("control-key-of-this-test")
    files = ["--api-key-file", str(tmp_path / "api-key"), "--control-key-file", str(tmp_path / "control-key")]
    process = subprocess.Popen(
        [*COMMAND, "--port", "0", *files], cwd=REPO, env=_environment(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        announced = process.stdout.readline()
        assert re.fullmatch(r"PORT=\d+\n", announced), announced
        url = f"http://127.0.0.1:{announced.strip().split('=')[1]}"
        scopes = requests.get(f"{url}/v3/scopes", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5)
        assert scopes.status_code == 200 and "marketing.read" in scopes.json()["scopes"]
        assert requests.get(f"{url}/__sim/state", timeout=5).status_code == 401  # the control key is needed
        control = {"X-Simulator-Key": "control-key-of-this-test"}
        assert requests.get(f"{url}/__sim/state", headers=control, timeout=5).json()["request_count"] == 1
    finally:
        process.terminate()
        process.wait(10)


def test_it_refuses_a_host_off_loopback_and_a_missing_key(tmp_path):
    (tmp_path / "api-key").write_text(API_KEY)
    off_loopback = subprocess.run(
        [*COMMAND, "--host", "192.0.2.1", "--api-key-file", str(tmp_path / "api-key")],
        cwd=REPO,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert off_loopback.returncode == 2 and "only listens on loopback" in off_loopback.stderr
    no_key = subprocess.run(COMMAND, cwd=REPO, env=_environment(), capture_output=True, text=True, timeout=30)
    assert no_key.returncode == 2 and "--api-key-file" in no_key.stderr
