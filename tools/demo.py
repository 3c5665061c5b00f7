"""``make demo``: one whole export on local stand-ins, start to end.

Starts the storage emulator and the SendGrid simulator on free loopback ports, uploads the sample
segments (fictitious people at example.com, a few bad rows among them) and a destinations.json,
runs the export through the CLI exactly as a user would, prints what happened, and stops what it
started, also on error. Exits non-zero if the run's record does not add up.
"""

from __future__ import annotations

import collections
import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from azure.storage.blob import BlobServiceClient

from tools.standins import sendgrid as sendgrid_simulator
from tools.standins.storage import Emulator

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
DEMO_KEY = "demo-key-for-the-local-simulator"
DESTINATION = "newsletter"


def main() -> int:
    print("Starting the local stand-ins (storage emulator, SendGrid simulator) on 127.0.0.1 ...")
    emulator = Emulator().start()
    simulator = sendgrid_simulator.start(sendgrid_simulator.SimState([DEMO_KEY], job_delay=0.3))
    try:
        upload_inputs(emulator.connection_string)
        env = {
            **os.environ,
            "EXPORT_STORAGE": emulator.connection_string,
            "AzureWebJobsStorage": emulator.connection_string,
            "SECRETS_SOURCE": "environment",
            "SENDGRID_SECRET_SENDGRID_API_KEY": DEMO_KEY,
            "SENDGRID_API_BASE_URL": simulator.base_url,
        }
        print(f"\n$ sendgrid-export export {DESTINATION}   (python -m shared, with the stand-ins' settings)")
        started = time.monotonic()
        proc = subprocess.run(
            # Only the settings above: a local.settings.json (make up writes one) names another stack.
            [sys.executable, "-m", "shared", "--no-local-settings", "export", DESTINATION],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
            check=False,
            timeout=600,
        )
        elapsed = time.monotonic() - started
        if not proc.stdout.strip():
            print(f"\nThe export printed no run record (exit {proc.returncode}).")
            return 1
        record = json.loads(proc.stdout)
        ok = summarize(record, proc.returncode, elapsed, emulator.connection_string, simulator.base_url)
        return 0 if ok else 1
    finally:
        simulator.stop()
        emulator.stop()
        print("\nStopped the local stand-ins.")


def upload_inputs(connection_string: str) -> None:
    service = BlobServiceClient.from_connection_string(connection_string)
    segments = service.create_container("segments")
    exports = service.create_container("sendgrid-exports")
    segments.upload_blob("demo/newsletter.csv", (SAMPLES / "segments" / "newsletter.csv").read_bytes())
    segments.upload_blob("demo/vip/vip.csv", (SAMPLES / "segments" / "vip.csv").read_bytes())
    exports.upload_blob("destinations.json", (SAMPLES / "destinations.json").read_bytes())
    print("Uploaded segments/demo/newsletter.csv, segments/demo/vip/vip.csv and sendgrid-exports/destinations.json.")


def summarize(record: dict[str, Any], exit_code: int, elapsed: float, connection_string: str, sim_url: str) -> bool:
    counts = record["counts"]
    print(f"\nRun {record['run_id']}: {record['status']} (exit code {exit_code}) in {elapsed:.1f}s")
    for segment in record["segments"]:
        print(f"  segment {segment['path']}: {segment['files']} file(s), {segment['rows']} rows")
    print("  counts: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    conserved = counts["read"] == counts["invalid"] + counts["duplicate"] + counts["unchanged"] + counts["sent"]
    print(
        f"  read = invalid + duplicate + unchanged + sent: "
        f"{counts['read']} = {counts['invalid']} + {counts['duplicate']} + {counts['unchanged']} + "
        f"{counts['sent']}  {'holds' if conserved else 'DOES NOT HOLD'}"
    )
    for batch in record["batches"]:
        print(
            f"  batch {batch['index']}: {batch['contacts']} contacts, {batch['bytes']} bytes, "
            f"{batch['attempts']} attempt(s), job {batch['status']}"
        )
    print("  timings (s): " + ", ".join(f"{k}={v}" for k, v in record["timings"].items()))
    for item in record["lists"]:
        print(f"  list '{item['name']}' ({item['id']}): {item['action']}")

    if record.get("rejects_blob"):
        service = BlobServiceClient.from_connection_string(connection_string)
        data = service.get_container_client("sendgrid-exports").download_blob(record["rejects_blob"]).readall()
        reasons = collections.Counter(row["reason"] for row in csv.DictReader(io.StringIO(data.decode("utf-8"))))
        print(f"\nRejected rows, in sendgrid-exports/{record['rejects_blob']}:")
        for reason, count in reasons.most_common():
            print(f"  {count} x {reason}")

    state = requests.get(f"{sim_url}/__sim/state", timeout=10).json()
    print("\nWhat the SendGrid simulator's lists now hold:")
    members_ok = False
    for item in state["lists"]:
        print(f"  '{item['name']}': {item['contact_count']} contacts")
        members_ok = item["contact_count"] == counts["accepted"]
        for email in item["members"][:3]:
            contact = state["contacts"][email]
            fields = sorted(
                k for k in contact if k not in ("id", "email", "list_ids", "custom_fields", "created_at", "updated_at")
            )
            print(f"    {contact['id'][:8]}...: email + {', '.join(fields)}")
        if item["contact_count"] > 3:
            print(f"    ... and {item['contact_count'] - 3} more")
    ok = conserved and members_ok and exit_code in (0, 3)
    print("\nDemo " + ("passed: every valid contact is in the list exactly once." if ok else "FAILED."))
    return ok


if __name__ == "__main__":
    sys.exit(main())
