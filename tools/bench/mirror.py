"""``make bench``'s mirror check: a run whose segment lost 100,000 contacts takes their ids from
one contact export of the list, then removes them: no search.

A destination in mirror mode first exports ``N + 100`` contacts (by CSV import: above the
threshold), then its segment shrinks to 100: the second run's requests are counted by kind.
Usage: ``python -m tools.bench.mirror [DEPARTURES]`` (default 100,000).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

from azure.storage.blob import BlobServiceClient

from tools.bench.measure import bench_storage, cli_env, run_cli, sim_requests, start_simulator

DEPARTURES = 100_000
STAYING = 100


def segment(n: int) -> bytes:
    return ("Email,FirstName\n" + "".join(f"m{i}@example.com,Name{i}\n" for i in range(n))).encode()


def kind_of(method: str, path: str) -> str:
    for prefix, kind in (
        ("/v3/marketing/contacts/exports", "exports"),
        ("/v3/marketing/contacts/search", "searches"),
        ("/v3/marketing/contacts/imports/", "polls"),
        ("/v3/marketing/lists/", "removals" if method == "DELETE" else "lists"),
    ):
        if path.startswith(prefix):
            return kind if not (kind == "exports" and method == "GET") else "export polls"
    return "other"


def mirror_run(service: BlobServiceClient, connection_string: str, departures: int = DEPARTURES) -> dict[str, int]:
    """Export ``departures + STAYING`` contacts, then only ``STAYING``; the second run's requests."""
    exports = service.get_container_client("sendgrid-exports")
    configured = json.loads(exports.download_blob("destinations.json").readall())
    mirror = {
        "name": "mirror",
        "mode": "mirror",
        "max_removal_fraction": 1.0,
        "data_privacy_consent": True,
        "list": {"name": "Mirror", "create_if_missing": True},
        "segments": [{"path": "mirror/people.csv"}],
        "max_profiles": departures + STAYING + 1,
    }
    others = [d for d in configured["destinations"] if d["name"] != "mirror"]
    exports.upload_blob("destinations.json", json.dumps({"destinations": [*others, mirror]}), overwrite=True)
    segments = service.get_container_client("segments")
    sim, sim_url = start_simulator()
    try:
        env = cli_env(connection_string, sim_url)
        segments.upload_blob("mirror/people.csv", segment(departures + STAYING), overwrite=True)
        run_cli(env, destination="mirror")
        before = len(sim_requests(sim_url))
        segments.upload_blob("mirror/people.csv", segment(STAYING), overwrite=True)
        run = run_cli(env, destination="mirror")
        log = sim_requests(sim_url, before)
    finally:
        sim.terminate()
        sim.wait(10)
    kinds = Counter(kind_of(e["method"], e["path"]) for e in log)
    record, wall = run.record, run.wall
    removals = record["removals"]
    print(
        f"  mirror run with {departures:,} departures ({record['status']}, removed {removals.get('done', 0):,}, "
        f"ids found by {removals.get('found_by')}): {wall:.1f}s; requests: "
        + ", ".join(f"{kind} {count:,}" for kind, count in sorted(kinds.items()))
    )
    met = kinds["exports"] <= 1 and kinds["searches"] == 0 and kinds["removals"] == -(-departures // 100)
    print(f"    at most one export plus the removals (no search): {'met' if met else 'NOT met'}", flush=True)
    return dict(kinds)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench.mirror", description=__doc__.splitlines()[0].replace("``", "")
    )
    parser.add_argument("departures", nargs="?", type=int, default=DEPARTURES)
    args = parser.parse_args()
    print(f"Mirror benchmark: {args.departures:,} departures")
    with bench_storage() as (service, connection_string):
        mirror_run(service, connection_string, args.departures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
