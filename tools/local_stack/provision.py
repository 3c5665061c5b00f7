"""The stack's storage, provisioned: containers, the queue and the samples, each only if absent."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient

from tools.local_stack.paths import SAMPLES, shown
from tools.standins.storage import ACCOUNT, ACCOUNT_KEY

SEGMENTS_CONTAINER = "segments"
EXPORTS_CONTAINER = "sendgrid-exports"
EXPORT_QUEUE = "sendgrid-export-jobs"


def connection_string(ports: dict[str, int]) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{ports['blob']}/{ACCOUNT};"
        f"QueueEndpoint=http://127.0.0.1:{ports['queue']}/{ACCOUNT};"
        f"TableEndpoint=http://127.0.0.1:{ports['table']}/{ACCOUNT};"
    )


def provision(stack: dict[str, Any]) -> list[str]:
    """Containers, queue and the samples, each only if absent. Returns notes on stored copies that
    differ from samples/ (kept: they are the user's edits, or the user's own data)."""
    conn = connection_string(stack["ports"])
    service = BlobServiceClient.from_connection_string(conn)
    notes: list[str] = []
    uploads = {
        SEGMENTS_CONTAINER: {
            "demo/newsletter.csv": SAMPLES / "segments" / "newsletter.csv",
            "demo/vip/vip.csv": SAMPLES / "segments" / "vip.csv",
        },
        EXPORTS_CONTAINER: {"destinations.json": SAMPLES / "destinations.json"},
    }
    for container, blobs in uploads.items():
        client = service.get_container_client(container)
        with contextlib.suppress(ResourceExistsError):
            client.create_container()
        for name, path in blobs.items():
            # Only if absent: the stack keeps what you changed since the last up.
            try:
                client.upload_blob(name, path.read_bytes(), overwrite=False)
            except ResourceExistsError:
                if client.download_blob(name).readall() != path.read_bytes():
                    notes.append(_differs_note(container, name, path))
    with contextlib.suppress(ResourceExistsError):
        QueueClient.from_connection_string(conn, EXPORT_QUEUE).create_queue()
    return notes


def _differs_note(container: str, name: str, path: Path) -> str:
    sample = shown(path)
    again = (
        f"make upload-destinations FILE={sample}"
        if name == "destinations.json"
        else f"make upload-segment FILE={sample} BLOB={name}"
    )
    return f"note: {container}/{name} in the stack differs from {sample} and was kept. To use the sample: {again}"
