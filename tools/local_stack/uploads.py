"""Your own data into the running stack: a segment file, or a checked ``destinations.json``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from azure.storage.blob import BlobServiceClient, ContainerClient

from tools.local_stack.paths import REPO, SAMPLE_SEGMENT
from tools.local_stack.provision import EXPORTS_CONTAINER, SEGMENTS_CONTAINER, connection_string
from tools.local_stack.stack import whole
from tools.local_stack.state import read_stack


def upload_segment(state: Path, file: Path, blob: str) -> int:
    if not file.is_file():
        raise SystemExit(f"{file}: no such file.")
    if blob.startswith("/") or ".." in blob.split("/") or not blob.strip("/"):
        raise SystemExit(f"--as {blob}: a blob name such as demo/newsletter.csv.")
    with open(file, "rb") as data:
        _running_container(state, SEGMENTS_CONTAINER).upload_blob(blob, data, overwrite=True)
    print(f"uploaded {file} ({file.stat().st_size:,} bytes) as {SEGMENTS_CONTAINER}/{blob}.")
    if blob == SAMPLE_SEGMENT:
        print("The sample destination 'newsletter' reads it: .venv/bin/sendgrid-export export newsletter")
    else:
        print(f'A destination reads it with "segments": [{{"path": "{blob}"}}] in destinations.json.')
    return 0


def upload_destinations(state: Path, file: Path) -> int:
    """Checked as the app reads it (and against the schema) first: a broken file is not uploaded."""
    checked = subprocess.run(
        [sys.executable, "-m", "shared", "validate-destinations", str(file)], cwd=REPO, check=False
    )
    if checked.returncode != 0:
        print(f"{file} was not uploaded: fix what FAIL names first.", file=sys.stderr)
        return checked.returncode
    _running_container(state, EXPORTS_CONTAINER).upload_blob("destinations.json", file.read_bytes(), overwrite=True)
    print(f"uploaded {file} as {EXPORTS_CONTAINER}/destinations.json; the next run reads it.")
    return 0


def _running_container(state: Path, container: str) -> ContainerClient:
    stack = read_stack(state)
    if stack is None or not whole(stack):
        raise SystemExit("the local stack is not running: make up first.")
    service = BlobServiceClient.from_connection_string(connection_string(stack["ports"]))
    return service.get_container_client(container)
