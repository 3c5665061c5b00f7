"""``make bench``: the export at scale against local stand-ins, with the figures printed.

The whole bench in its order (the package's doc says what each step measures).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys

import requests
from azure.storage.blob import BlobServiceClient

from tools.bench.baseline import baseline
from tools.bench.data import Variant, upload
from tools.bench.measure import KEY, CliRun, bench_storage, cli_env, requests_by_kind, run_cli, start_simulator
from tools.bench.mirror import mirror_run
from tools.bench.paced import PACED_PROFILES, paced_bulk_run, paced_run
from tools.bench.report import FIXED_PROFILES, BenchFigures, report, report_bulk


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench", description=__doc__.splitlines()[0].replace("``", "")
    )
    parser.add_argument("n", nargs="?", type=int, default=int(os.environ.get("N", "1000000")))
    n = parser.parse_args().n
    print(f"Benchmark: {n:,} profiles; storage emulator and SendGrid simulator on 127.0.0.1")
    with bench_storage(json.dumps(_destinations(n))) as (service, connection_string):
        _measure(service, connection_string, n)
    return 0


def _measure(service: BlobServiceClient, connection_string: str, n: int) -> None:
    sim, sim_url = start_simulator()
    try:
        generated = upload(service, n)
        print(f"  generated and uploaded in {generated:.1f}s", flush=True)
        # The upsert path; the import path is measured beside it.
        env = cli_env(connection_string, sim_url, SENDGRID_BULK_IMPORT="never")
        fixed_rss, full = _first_exports(service, env, sim_url, n)
        changed, delta, others = _delta_exports(service, env, n)
        # The simulator holds about 1 KB a contact (10 GB at ten million): the baseline gets a
        # fresh one, which creates its contacts as the full export's did.
        sim.terminate()
        sim.wait(10)
        sim, sim_url = start_simulator()
        base = baseline(service, sim_url, _new_list(sim_url, "Baseline"), n)
        report(BenchFigures(n, full, delta, len(changed), others, base, fixed_rss))
        paced = paced_run(service, connection_string, PACED_PROFILES)
        paced_bulk_run(service, connection_string, n, paced)
        mirror_run(service, connection_string)
    finally:
        sim.terminate()
        sim.wait(10)


def _destinations(n: int) -> dict[str, list[dict[str, object]]]:
    """'bench' and 'fixed' by upsert, 'bulk' (the same segment as 'bench') by CSV import."""
    by_upsert: list[dict[str, object]] = [
        {
            "name": name,
            "data_privacy_consent": True,
            "list": {"name": name.title(), "create_if_missing": True},
            "segments": [{"path": f"{name}/"}],
            "max_profiles": max(n, FIXED_PROFILES) + 1,
        }
        for name in ("bench", "fixed")
    ]
    bulk: dict[str, object] = {
        "name": "bulk",
        "data_privacy_consent": True,
        "list": {"name": "Bulk", "create_if_missing": True},
        "segments": [{"path": "bench/"}],
        "max_profiles": n + 1,
    }
    return {"destinations": [*by_upsert, bulk]}


def _first_exports(service: BlobServiceClient, env: dict[str, str], sim_url: str, n: int) -> tuple[float, CliRun]:
    """The export of FIXED_PROFILES (its peak RSS), then the first export of ``n`` by upsert and
    by CSV import, side by side. Returns the first's peak RSS and the full export by upsert."""
    # Linux counts in a child's peak RSS the peak of the process it was spawned from: the
    # exports run while this one is small, and the baseline (its payloads held here) last.
    upload(service, FIXED_PROFILES, prefix="fixed")
    fixed_rss = run_cli(env, destination="fixed").rss
    print(f"  export of {FIXED_PROFILES:,}: peak RSS {fixed_rss:.0f} MB", flush=True)
    before = sum(requests_by_kind(sim_url).values())
    full = run_cli(env)
    print(f"  full export: {full.wall:.2f}s, peak RSS {full.rss:.0f} MB{full.when}", flush=True)
    by_upsert = requests_by_kind(sim_url, since=before)
    bulk = run_cli({**env, "SENDGRID_BULK_IMPORT": "always"}, destination="bulk")
    by_import = requests_by_kind(sim_url, since=before + sum(by_upsert.values()))
    report_bulk(n, full, by_upsert, bulk, by_import)
    return fixed_rss, full


def _delta_exports(
    service: BlobServiceClient, env: dict[str, str], n: int
) -> tuple[frozenset[int], CliRun, list[tuple[str, CliRun]]]:
    """A delta after 1% changed; then deltas of other kinds: a day's churn, the same rows in
    another order (the state then follows it), then 1% changed on that order."""
    changed = frozenset(random.Random(1).sample(range(n), max(1, n // 100)))
    upload(service, n, Variant(changed))
    delta = run_cli(env)
    print(f"  delta export: {delta.wall:.2f}s, peak RSS {delta.rss:.0f} MB{delta.when}", flush=True)
    others = []
    for label, variant in [
        ("delta, churn (0.5% changed, 0.25% new, 0.25% gone)", Variant(churn=True)),
        ("delta, same rows in another order", Variant(churn=True, reversed=True)),
        ("delta, 1% changed after that", Variant(changed, churn=True, reversed=True)),
    ]:
        upload(service, n, variant)
        run = run_cli(env)
        print(f"  {label}: {run.wall:.2f}s, peak RSS {run.rss:.0f} MB{run.when}", flush=True)
        others.append((label, run))
    return changed, delta, others


def _new_list(sim_url: str, name: str) -> str:
    created = requests.post(
        f"{sim_url}/v3/marketing/lists",
        json={"name": name},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=30,
    )
    return str(created.json()["id"])


if __name__ == "__main__":
    sys.exit(main())
