"""What the app needs to reach the stack: ``local.settings.json`` (merged) and ``.localstack/env``."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import certifi

from tools.local_stack.provision import EXPORT_QUEUE, EXPORTS_CONTAINER, SEGMENTS_CONTAINER, connection_string
from tools.local_stack.state import write_private


def settings(stack: dict[str, Any], state: Path) -> dict[str, str]:
    ports = stack["ports"]
    conn = connection_string(ports)
    return {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": conn,
        "EXPORT_STORAGE": conn,
        "SEGMENTS_CONTAINER": SEGMENTS_CONTAINER,
        "EXPORTS_CONTAINER": EXPORTS_CONTAINER,
        "EXPORT_QUEUE": EXPORT_QUEUE,
        "DESTINATIONS_BLOB": "destinations.json",
        "EXPORT_SCHEDULE": "0 0 3 * * *",  # the timer's schedule: func start will not index without it
        "SENDGRID_API_BASE_URL": f"http://127.0.0.1:{ports['sendgrid']}",
        "SECRETS_SOURCE": "keyvault",
        "KEY_VAULT_URL": f"https://127.0.0.1:{ports['vault']}/",
        # The app's own DefaultAzureCredential, limited to managed identity, gets its token from
        # the stand-in's loopback endpoint (App Service's protocol): no developer login is tried,
        # and nothing leaves the machine.
        "AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential",
        "IDENTITY_ENDPOINT": f"http://127.0.0.1:{ports['token']}/msi/token",
        "IDENTITY_HEADER": (state / "identity-header").read_text(),
        # The CLI gives this CA to the Key Vault client itself, where a REQUESTS_CA_BUNDLE of the
        # shell cannot take its place.
        "KEY_VAULT_CA_BUNDLE": str((state / "keyvault-ca.pem").resolve()),
        # For func start (whose Key Vault client is the app's): the stand-in's CA and the usual ones.
        "REQUESTS_CA_BUNDLE": str(_ca_bundle(state)),
    }


def _ca_bundle(state: Path) -> Path:
    """certifi's CAs (requests' own default) plus the stand-in's: trusting the stand-in must not
    stop anything else from verifying."""
    bundle = state / "ca-bundle.pem"
    text = Path(certifi.where()).read_text() + "\n" + (state / "keyvault-ca.pem").read_text()
    bundle.write_text(text)
    return bundle.resolve()


def write_local_settings(path: Path, values: dict[str, str]) -> None:
    """Merge into an existing local.settings.json: the stack's keys are replaced, yours are kept."""
    current: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(path.read_text(encoding="utf-8-sig"))
        if isinstance(loaded, dict):
            current = loaded
    kept = current.get("Values")
    current_values: dict[str, Any] = kept if isinstance(kept, dict) else {}
    current.update({"IsEncrypted": False, "Values": {**current_values, **values}})
    write_private(path, json.dumps(current, indent=2) + "\n")


def write_shell_env(path: Path, values: dict[str, str]) -> None:
    """For a shell: ``set -a; . .localstack/env; set +a``."""
    write_private(path, "".join(f"{k}={_shell_quote(v)}\n" for k, v in values.items()))


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"
