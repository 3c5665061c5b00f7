"""A stand-alone export process for the kill -9 test: the real edges, a 15 s lock lease.

Usage: python -m tests.integration.export_process  (settings in the environment)
"""

from __future__ import annotations

import dataclasses
import os
import sys

from shared.adapters.locks import BlobLeaseLock
from shared.adapters.storage import AzureBlobStore
from shared.bootstrap import build_runtime
from shared.entrypoints.service import run_now
from shared.run.records import ExportOptions
from shared.settings import Settings


def main() -> int:
    settings = Settings.from_env()
    runtime = build_runtime(settings)
    runtime.tuning = dataclasses.replace(
        runtime.tuning,
        job_poll_interval=0.05,
        max_batch_contacts=int(os.environ.get("TEST_BATCH_CONTACTS", "100")),
        send_concurrency=1,
        record_save_every=float(os.environ.get("TEST_RECORD_SAVE_EVERY", "5")),
        progress_every=float(os.environ.get("TEST_RECORD_SAVE_EVERY", "2")),
    )
    assert isinstance(runtime.edges.exports, AzureBlobStore)
    # The shortest lease Blob Storage allows, so the test need not wait a minute for it to expire.
    runtime.edges.lock = BlobLeaseLock(runtime.edges.exports._container, lease_seconds=15, renew_every=5)
    record = run_now(runtime, "newsletter", options=ExportOptions(), requested_by="test")
    print(record.status, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
