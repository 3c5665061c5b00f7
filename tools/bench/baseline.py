"""The raw baseline the export is measured against: stream the same blobs and send pre-built
payloads to a simulator, with none of the export's work between."""

from __future__ import annotations

import time

import requests
from azure.storage.blob import BlobServiceClient

from shared.run.send.batching import BatchSpool, encode_contact
from shared.settings import DEFAULT_MAX_BATCH_BYTES
from tools.bench.data import profile
from tools.bench.measure import KEY


def baseline(service: BlobServiceClient, sim_url: str, list_id: str, n: int) -> float:
    """Stream the same blobs and send pre-built payloads (built before the clock starts), to a
    fresh simulator: it creates the contacts, as it did for the full export."""
    bodies = _payloads(list_id, n)
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    started = time.monotonic()
    container = service.get_container_client("segments")
    for blob in container.list_blobs(name_starts_with="bench/"):
        for _ in container.download_blob(blob.name).chunks():
            pass
    jobs = [session.put(f"{sim_url}/v3/marketing/contacts", data=body, timeout=120).json()["job_id"] for body in bodies]
    for job in jobs:
        while session.get(f"{sim_url}/v3/marketing/contacts/imports/{job}", timeout=60).json()["status"] == "pending":
            time.sleep(0.05)
    return time.monotonic() - started


def _payloads(list_id: str, n: int) -> list[bytes]:
    spool = BatchSpool([list_id], max_bytes=DEFAULT_MAX_BATCH_BYTES)  # the export's own cap
    for i in range(n):
        spool.add(
            encode_contact(
                {
                    "email": profile(i).split(",", 2)[1],
                    "first_name": "Ada",
                    "last_name": "Lee",
                    "city": "Lisbon",
                    "state_province_region": "Lisboa",
                    "country": "Portugal",
                    "postal_code": "1100-148",
                }
            ),
            "b",
            i,
        )
    return [b.body for b in spool.batches()]
