"""``make bench``'s paced run: an export at SendGrid's pace, scaled down so that it takes a minute.

SendGrid announces its pace only in ``X-RateLimit-*`` headers; production callers see about 6
``PUT /v3/marketing/contacts`` a minute, and import jobs of about 30 s (see the simulator's module
doc). Scaled by ten in time: 1 PUT a second announced, jobs of about 3 s (2 s and 1 ms a
contact), 30,000 contacts in batches of 200 KB (about 32 PUTs). The floor of such an export is
its PUTs at the announced pace plus one job (the last): nothing can end much sooner. Printed: the
wall time against that floor, the 429s, and the requests per million contacts by kind.

Usage: ``python -m tools.bench.paced [N] [--code DIR]`` (``--code``: run the export from another
checkout of this repo, to compare before and after with the same simulator).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from azure.storage.blob import BlobServiceClient

from tools.bench.data import upload
from tools.bench.measure import CONTROL_HEADERS, REPO, bench_storage, cli_env, run_cli, sim_requests, start_simulator

PACED_PROFILES = 30_000
PUTS_PER_SECOND = 1.0
JOB_SECONDS = 2.0
JOB_SECONDS_PER_CONTACT = 0.001
BATCH_BYTES = 200_000
PACE = {
    "PUT /v3/marketing/contacts": {"limit": 1, "window": 1},
    "GET /v3/marketing/contacts/imports/{id}": {"limit": 10, "window": 1},
    "POST /v3/marketing/contacts/search/emails": {"limit": 10, "window": 1},
    "DELETE /v3/marketing/lists/{id}/contacts": {"limit": 10, "window": 1},
}
KINDS = {
    "upserts": ("PUT", "/v3/marketing/contacts"),
    "polls": ("GET", "/v3/marketing/contacts/imports/"),
    "searches": ("POST", "/v3/marketing/contacts/search"),
    "removals": ("DELETE", "/v3/marketing/lists/"),
}


def paced_run(service: BlobServiceClient, connection_string: str, n: int, code: Path = REPO) -> dict[str, float]:
    """One paced export of ``n`` new contacts; prints and returns its figures."""
    exports = service.get_container_client("sendgrid-exports")
    configured = json.loads(exports.download_blob("destinations.json").readall())
    others = [d for d in configured["destinations"] if d["name"] != "paced"]
    exports.upload_blob("destinations.json", json.dumps({"destinations": [*others, destination(n)]}), overwrite=True)
    sim, sim_url = start_simulator()
    try:
        config = {"pace": PACE, "job_delay": JOB_SECONDS, "job_seconds_per_contact": JOB_SECONDS_PER_CONTACT}
        config["status_shape"] = "production"
        requests.post(f"{sim_url}/__sim/config", json=config, headers=CONTROL_HEADERS, timeout=10).raise_for_status()
        upload(service, n, prefix="paced")
        env = cli_env(connection_string, sim_url, SENDGRID_MAX_BATCH_BYTES=str(BATCH_BYTES), PYTHONPATH=str(code))
        run = run_cli(env, destination="paced", cwd=code)
        log = sim_requests(sim_url)
    finally:
        sim.terminate()
        sim.wait(10)
    return report(n, run.record, run.wall, log)


def report(n: int, record: dict[str, Any], wall: float, log: list[dict[str, Any]]) -> dict[str, float]:
    by_kind: Counter[str] = Counter()
    limited: Counter[str] = Counter()
    for entry in log:
        for kind, (method, prefix) in KINDS.items():
            if entry["method"] == method and entry["path"].startswith(prefix):
                by_kind[kind] += 1
                limited[kind] += entry.get("status") == 429
    accepted_puts = by_kind["upserts"] - limited["upserts"]
    contacts_per_put = n / max(1, accepted_puts)
    # N PUTs at the pace span N - 1 intervals (the first goes at once), then the last one's job runs.
    # The simulator's windows are fixed, as SendGrid's are: a first PUT at a window's very end can
    # beat even this by up to one window, so a ratio a little under 1.00 is no fault.
    floor = max(0, accepted_puts - 1) / PUTS_PER_SECOND + JOB_SECONDS + JOB_SECONDS_PER_CONTACT * contacts_per_put
    share = limited["upserts"] / max(1, by_kind["upserts"])
    print(f"  paced export of {n:,} contacts ({record['status']}, accepted {record['counts']['accepted']:,}):")
    print(
        f"    wall {wall:.1f}s against a floor of {floor:.1f}s ({accepted_puts} PUTs at "
        f"{PUTS_PER_SECOND:g}/s + one job): {wall / floor:.2f}x"
    )
    print(f"    429s: {sum(limited.values())} ({limited['upserts']} of {by_kind['upserts']} PUTs, {share:.1%})")
    per_million = ", ".join(f"{kind} {by_kind[kind] * 1_000_000 / n:,.0f}" for kind in KINDS)
    print(f"    requests per million contacts: {per_million}", flush=True)
    return {
        "wall": wall,
        "floor": floor,
        "ratio": wall / floor,
        "put_429_share": share,
        "contacts_per_put": contacts_per_put,
    }


# SendGrid publishes no speed for import jobs. Assumed: a file's job takes the upsert job's 2 s
# plus 30 s a million contacts (scaled; 5 min a million at SendGrid's real pace).
IMPORT_SECONDS_PER_CONTACT = 0.00003


def paced_bulk_run(service: BlobServiceClient, connection_string: str, n: int, upsert: dict[str, float]) -> None:
    """The first export of the ``n`` profiles under ``bench/`` by CSV import at the same scaled pace,
    beside the upsert path's floor for ``n`` computed from the paced upsert run (``upsert``: its
    contacts per PUT): the upsert path is not run at ``n`` (900 PUTs a million at 1 a second)."""
    exports = service.get_container_client("sendgrid-exports")
    configured = json.loads(exports.download_blob("destinations.json").readall())
    bulk = {**destination(n), "name": "paced-bulk", "list": {"name": "Paced bulk", "create_if_missing": True}}
    bulk["segments"] = [{"path": "bench/"}]
    others = [d for d in configured["destinations"] if d["name"] != "paced-bulk"]
    exports.upload_blob("destinations.json", json.dumps({"destinations": [*others, bulk]}), overwrite=True)
    sim, sim_url = start_simulator()
    try:
        config = {"pace": PACE, "job_delay": JOB_SECONDS, "job_seconds_per_contact": JOB_SECONDS_PER_CONTACT}
        config |= {"status_shape": "production", "import_seconds_per_contact": IMPORT_SECONDS_PER_CONTACT}
        requests.post(f"{sim_url}/__sim/config", json=config, headers=CONTROL_HEADERS, timeout=10).raise_for_status()
        env = cli_env(
            connection_string, sim_url, SENDGRID_MAX_BATCH_BYTES=str(BATCH_BYTES), SENDGRID_BULK_IMPORT="always"
        )
        run = run_cli(env, destination="paced-bulk")
    finally:
        sim.terminate()
        sim.wait(10)
    record, wall = run.record, run.wall
    per_put = upsert["contacts_per_put"]
    floor = n / per_put / PUTS_PER_SECOND + JOB_SECONDS + JOB_SECONDS_PER_CONTACT * per_put
    job = JOB_SECONDS + IMPORT_SECONDS_PER_CONTACT * min(n, 1_000_000)
    print(f"  paced first export of {n:,} contacts by CSV import ({record['status']}):")
    print(
        f"    wall {wall:.1f}s (of which the last file's job, assumed: {job:.1f}s), against the upsert path's "
        f"floor of {floor:.1f}s for {n:,} (computed, not run: {n / per_put:,.0f} PUTs of {per_put:,.0f} contacts "
        f"at {PUTS_PER_SECOND:g}/s + one job): {floor / wall:.1f}x faster",
        flush=True,
    )


def destination(n: int) -> dict[str, object]:
    return {
        "name": "paced",
        "data_privacy_consent": True,
        "list": {"name": "Paced", "create_if_missing": True},
        "segments": [{"path": "paced/"}],
        "max_profiles": n + 1,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench.paced", description=__doc__.splitlines()[0].replace("``", "")
    )
    parser.add_argument(
        "n", nargs="?", type=int, default=PACED_PROFILES, help="new contacts to export (default: %(default)s)"
    )
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout whose export runs")
    args = parser.parse_args()
    print(f"Paced benchmark: {args.n:,} profiles at a scaled production pace")
    with bench_storage() as (service, connection_string):
        paced_run(service, connection_string, args.n, args.code.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
