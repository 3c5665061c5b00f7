"""``make bench``: the export at scale against local stand-ins, with the figures printed.

Generates N profiles (eight mapped fields, realistic lengths) into the storage emulator as
Customer-Insights-style partitions, then measures:

1. a full export (the CLI, as a user runs it), its wall time per stage, its peak RSS and when in
   the run the peak came (sampled);
2. a delta export after 1% of the profiles changed;
3. the raw baseline: stream the same blobs and send pre-built payloads to the same simulator;
4. at SendGrid's pace (``tools/bench_paced.py``): 30,000 contacts at a scaled production pace,
   the wall time against its floor, the 429s and the requests per million contacts by kind;
5. the part of the memory that does not grow: the peak RSS of a full export of 100,000 profiles
   (enough for the send buffers to be all in use), so that what grows with the number of
   profiles can be given in MB per million.

The SendGrid simulator runs in its own process, so its work does not share the export's core.
Nothing leaves 127.0.0.1. Usage: ``python -m tools.bench [N]`` (default 1,000,000).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from azure.storage.blob import BlobServiceClient

from shared.run.send.batching import BatchSpool, encode_contact
from shared.settings import DEFAULT_MAX_BATCH_BYTES
from tools.standins.storage import Emulator

REPO = Path(__file__).resolve().parent.parent
KEY = "bench-key-for-the-local-simulator"
ROWS_PER_FILE = 250_000
FIXED_PROFILES = 100_000  # the export whose peak RSS is taken as the part that does not grow
FIRST = [
    "Ada",
    "Bruno",
    "Chloé",
    "Dmitri",
    "Elif",
    "Farah",
    "Gustav",
    "Hana",
    "Ivo",
    "Jonas",
    "Kaia",
    "Luca",
    "María José",
    "Nuno",
    "Olga",
    "Priya",
    "Quinn",
    "Rafael",
    "Sofía",
    "Tariq",
    "Uma",
    "Viktor",
    "Wen",
    "Zoë",
]
LAST = [
    "Andersen",
    "Bianchi",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "García López",
    "Horvat",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Oliveira",
    "Petrov",
    "Rossi",
    "Van der Berg",
]
PLACES = [
    ("Lisbon", "Lisboa", "Portugal", "1100-148"),
    ("Lyon", "Auvergne-Rhône-Alpes", "France", "69002"),
    ("Malmö", "Skåne", "Sweden", "211 22"),
    ("Austin", "Texas", "United States", "78701"),
    ("Osaka", "Osaka", "Japan", "530-0001"),
    ("Cork", "Munster", "Ireland", "T12 X2E8"),
    ("São Paulo", "São Paulo", "Brazil", "01310-100"),
    ("Toronto", "Ontario", "Canada", "M5H 2N2"),
]
HEADER = "CustomerId,PrimaryEmail,FirstName,LastName,City,StateOrProvince,Country,PostalCode\r\n"


def profile(i: int, version: int = 0) -> str:
    rng = random.Random(i)
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city, state, country, postal = rng.choice(PLACES)
    if version:
        city = f"{city} {version}"
    local = unicodedata.normalize("NFKD", first.split()[0].lower()).encode("ascii", "ignore").decode()
    email = f"{local}.{i}@{rng.choice(['example.com', 'example.org', 'example.net'])}"
    return f'C{i:08d},{email},{first},"{last}",{city},{state},{country},{postal}\r\n'


@dataclass(frozen=True)
class Variant:
    """How an export's input differs from the first one's."""

    changed: frozenset[int] = frozenset()  # rows whose city changed
    churn: bool = False  # a day's churn: 0.5% changed, 0.25% new contacts among them, 0.25% gone
    reversed: bool = False  # each partition's rows in the opposite order: none where it was


def rows_of(start: int, stop: int, n: int, variant: Variant) -> Iterator[str]:
    ids = range(stop - 1, start - 1, -1) if variant.reversed else range(start, stop)
    churn = variant.churn
    for i in ids:
        if churn and i % 400 == 123:
            continue  # left the segment
        yield profile(i, 1 if i in variant.changed else 2 if churn and i % 200 == 55 else 0)
        if churn and i % 400 == 7:
            yield profile(n + i)  # a new contact, in the middle of the others


def partition(start: int, stop: int, n: int, variant: Variant) -> Iterator[bytes]:
    yield HEADER.encode()
    buffer: list[str] = []
    for row in rows_of(start, stop, n, variant):
        buffer.append(row)
        if len(buffer) == 10_000:
            yield "".join(buffer).encode()
            buffer = []
    if buffer:
        yield "".join(buffer).encode()


def upload(service: BlobServiceClient, n: int, variant: Variant = Variant(), prefix: str = "bench") -> float:
    started = time.monotonic()
    container = service.get_container_client("segments")
    for index, start in enumerate(range(0, n, ROWS_PER_FILE)):
        data = b"".join(partition(start, min(n, start + ROWS_PER_FILE), n, variant))
        container.upload_blob(f"{prefix}/Profiles_{index + 1}.csv", data, overwrite=True, max_concurrency=2)
    return time.monotonic() - started


class PeakSampler:
    """When a process's resident memory peaked: /proc sampled every 50 ms (Linux; elsewhere
    nothing is known), to tell which stage of a run holds the peak."""

    def __init__(self, pid: int):
        self.pid, self.peak_mb = pid, 0.0
        self.peak_at: float | None = None
        self._done = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while not self._done.wait(0.05):
            try:
                line = next(x for x in status.read_text().splitlines() if x.startswith("VmRSS:"))
            except (OSError, StopIteration):
                return
            rss = int(line.split()[1]) / 1024
            if rss > self.peak_mb:
                self.peak_mb, self.peak_at = rss, time.monotonic() - self._started

    def stop(self) -> str:
        self._done.set()
        self._thread.join()
        return "" if self.peak_at is None else f" (sampled peak {self.peak_mb:.0f} MB at {self.peak_at:.1f}s)"


def run_cli(
    env: dict[str, str], *args: str, destination: str = "bench", cwd: Path = REPO
) -> tuple[dict[str, Any], float, float, str]:
    """Run the export CLI; returns its record, wall seconds, peak RSS in MB (its own, from the
    wait that reaps it: RUSAGE_CHILDREN would give the largest of every child so far) and when
    the sampled peak came."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shared", "export", destination, *args], env=env, cwd=cwd, stdout=out, stderr=err
        )
        sampler = PeakSampler(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        when = sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        if proc.returncode not in (0, 3):
            sys.stderr.write(err.read().decode(errors="replace")[-4000:])
            raise SystemExit(f"the export failed (exit {proc.returncode})")
        return json.loads(out.read()), wall, usage.ru_maxrss / 1024, when


def baseline(service: BlobServiceClient, sim_url: str, list_id: str, n: int) -> float:
    """Stream the same blobs and send pre-built payloads (built before the clock starts), to a
    fresh simulator: it creates the contacts, as it did for the full export."""
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
    bodies = [b.body for b in spool.batches()]
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


DATA_KINDS = ("upserts", "imports", "uploads", "field definitions")


def sim_requests(sim_url: str, since: int = 0) -> list[dict[str, Any]]:
    """The simulator's request log, from the ``since``-th request."""
    answer = requests.get(f"{sim_url}/__sim/requests", headers=CONTROL_HEADERS, timeout=60)
    return list(answer.json()["requests"][since:])


def cli_env(connection_string: str, sim_url: str, **extra: str) -> dict[str, str]:
    """The environment of an export run by the CLI against the emulator and the simulator."""
    return {
        **os.environ,
        "EXPORT_STORAGE": connection_string,
        "AzureWebJobsStorage": connection_string,
        "SECRETS_SOURCE": "environment",
        "SENDGRID_SECRET_SENDGRID_API_KEY": KEY,
        "SENDGRID_API_BASE_URL": sim_url,
        **extra,
    }


def requests_by_kind(sim_url: str, since: int = 0) -> dict[str, int]:
    """The simulator's requests (from the ``since``-th), by kind."""
    log = sim_requests(sim_url, since)
    found: dict[str, int] = {}
    for entry in log:
        method, path = entry["method"], entry["path"]
        if path.startswith("/v3/marketing/contacts/imports/"):
            kind = "polls"
        elif path == "/v3/marketing/contacts/imports":
            kind = "imports"
        elif path.startswith("/__sim/uploads/"):
            kind = "uploads"
        elif (method, path) == ("PUT", "/v3/marketing/contacts"):
            kind = "upserts"
        elif path == "/v3/marketing/field_definitions":
            kind = "field definitions"
        else:
            kind = "other (lists, scopes)"
        found[kind] = found.get(kind, 0) + 1
    return found


def report_bulk(
    n: int,
    full: dict,
    full_wall: float,
    full_rss: float,
    by_upsert: dict[str, int],
    bulk: tuple[dict, float, float, str],
    by_import: dict[str, int],
) -> None:
    """The first export by upsert and by CSV import, side by side: requests by kind, time, memory."""
    record, wall, rss, when = bulk
    print(f"  first export of {n:,} by CSV import: {wall:.2f}s, peak RSS {rss:.0f} MB{when} ({record['status']})")
    for label, kinds, seconds, peak in (("upsert", by_upsert, full_wall, full_rss), ("import", by_import, wall, rss)):
        data = sum(kinds.get(kind, 0) for kind in DATA_KINDS)
        listed = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
        print(f"    by {label}: {data} requests for the data ({listed}); {seconds:.1f}s, peak RSS {peak:.0f} MB")
    data = sum(by_import.get(kind, 0) for kind in DATA_KINDS)
    print(
        f"    import: at most 5 requests for the data (polls apart): {'met' if data <= 5 else 'NOT met'}; "
        f"memory not above the upsert path's: {'met' if rss <= full_rss else 'NOT met'}",
        flush=True,
    )


# The simulator's /__sim/ endpoints want its control key (header CONTROL_HEADERS); new each bench.
SIM_CONTROL_KEY = secrets.token_urlsafe(16)
CONTROL_HEADERS = {"X-Simulator-Key": SIM_CONTROL_KEY}


def start_simulator() -> tuple[subprocess.Popen[str], str]:
    sim = subprocess.Popen(
        [sys.executable, "-m", "tools.standins.sendgrid", "--port", "0", "--job-delay", "0.2"],
        cwd=REPO,
        # Keys through the environment, not the command line, where ps shows them.
        env={**os.environ, "SENDGRID_SIMULATOR_API_KEY": KEY, "SENDGRID_SIMULATOR_CONTROL_KEY": SIM_CONTROL_KEY},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sim.stdout is not None
    return sim, f"http://127.0.0.1:{sim.stdout.readline().strip().split('=')[1]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=int(os.environ.get("N", "1000000")))
    n = parser.parse_args().n
    print(f"Benchmark: {n:,} profiles; storage emulator and SendGrid simulator on 127.0.0.1")
    emulator = Emulator().start()
    sim, sim_url = start_simulator()
    try:
        service = BlobServiceClient.from_connection_string(emulator.connection_string)
        service.create_container("segments")
        exports = service.create_container("sendgrid-exports")
        exports.upload_blob(
            "destinations.json",
            json.dumps(
                {
                    "destinations": [
                        {
                            "name": name,
                            "data_privacy_consent": True,
                            "list": {"name": name.title(), "create_if_missing": True},
                            "segments": [{"path": f"{name}/"}],
                            "max_profiles": max(n, FIXED_PROFILES) + 1,
                        }
                        for name in ("bench", "fixed")
                    ]
                    + [
                        {
                            "name": "bulk",
                            "data_privacy_consent": True,
                            "list": {"name": "Bulk", "create_if_missing": True},
                            "segments": [{"path": "bench/"}],
                            "max_profiles": n + 1,
                        }
                    ]
                }
            ),
        )
        generated = upload(service, n)
        print(f"  generated and uploaded in {generated:.1f}s", flush=True)
        # The upsert path; the import path is measured beside it.
        env = cli_env(emulator.connection_string, sim_url, SENDGRID_BULK_IMPORT="never")
        # Linux counts in a child's peak RSS the peak of the process it was spawned from: the
        # exports run while this one is small, and the baseline (its payloads held here) last.
        upload(service, FIXED_PROFILES, prefix="fixed")
        fixed_rss = run_cli(env, destination="fixed")[2]
        print(f"  export of {FIXED_PROFILES:,}: peak RSS {fixed_rss:.0f} MB", flush=True)
        before = sum(requests_by_kind(sim_url).values())
        full, full_wall, full_rss, when = run_cli(env)
        print(f"  full export: {full_wall:.2f}s, peak RSS {full_rss:.0f} MB{when}", flush=True)
        by_upsert = requests_by_kind(sim_url, since=before)
        bulk = run_cli({**env, "SENDGRID_BULK_IMPORT": "always"}, destination="bulk")
        by_import = requests_by_kind(sim_url, since=before + sum(by_upsert.values()))
        report_bulk(n, full, full_wall, full_rss, by_upsert, bulk, by_import)
        changed = frozenset(random.Random(1).sample(range(n), max(1, n // 100)))
        upload(service, n, Variant(changed))
        delta, delta_wall, delta_rss, when = run_cli(env)
        print(f"  delta export: {delta_wall:.2f}s, peak RSS {delta_rss:.0f} MB{when}", flush=True)
        # Deltas of other kinds: a day's churn; the same rows in another order (the state then
        # follows it); then 1% changed on that order.
        others = []
        for label, variant in [
            ("delta, churn (0.5% changed, 0.25% new, 0.25% gone)", Variant(churn=True)),
            ("delta, same rows in another order", Variant(churn=True, reversed=True)),
            ("delta, 1% changed after that", Variant(changed, churn=True, reversed=True)),
        ]:
            upload(service, n, variant)
            record, wall, rss, when = run_cli(env)
            print(f"  {label}: {wall:.2f}s, peak RSS {rss:.0f} MB{when}", flush=True)
            others.append((label, record, wall, rss))
        # The simulator holds about 1 KB a contact (10 GB at ten million): the baseline gets a
        # fresh one, which creates its contacts as the full export's did.
        sim.terminate()
        sim.wait(10)
        sim, sim_url = start_simulator()
        created = requests.post(
            f"{sim_url}/v3/marketing/lists",
            json={"name": "Baseline"},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=30,
        )
        base = baseline(service, sim_url, created.json()["id"], n)
        report(n, full, full_wall, full_rss, delta, delta_wall, delta_rss, base, len(changed), fixed_rss, others)
        from tools.bench_paced import PACED_PROFILES, paced_bulk_run, paced_run  # it imports this module

        paced = paced_run(service, emulator.connection_string, PACED_PROFILES)
        paced_bulk_run(service, emulator.connection_string, n, paced)
        from tools.bench_mirror import mirror_run

        mirror_run(service, emulator.connection_string)
    finally:
        sim.terminate()
        sim.wait(10)
        emulator.stop()
    return 0


def report(
    n: int,
    full: dict[str, Any],
    full_wall: float,
    full_rss: float,
    delta: dict[str, Any],
    delta_wall: float,
    delta_rss: float,
    base: float,
    changed: int,
    fixed_rss: float,
    others: list[tuple[str, dict[str, Any], float, float]],
) -> None:
    def stages(record: dict[str, Any]) -> str:
        return ", ".join(f"{k} {v:.2f}s" for k, v in record["timings"].items() if k != "total")

    print()
    print("| run | contacts sent | wall (s) | contacts/s | peak RSS (MB) | status |")
    print("|---|---:|---:|---:|---:|---|")

    def row(label: str, record: dict[str, Any], wall: float, rss: float) -> str:
        sent = record["counts"]["sent"]
        return f"| {label} | {sent:,} | {wall:.2f} | {n / wall:,.0f} | {rss:.0f} | {record['status']} |"

    print(row("full export", full, full_wall, full_rss))
    print(row(f"delta ({changed:,} changed)", delta, delta_wall, delta_rss))
    for label, record, wall, rss in others:
        print(row(label, record, wall, rss))
    print(f"| raw baseline | {n:,} | {base:.2f} | {n / base:,.0f} | - | - |")
    print()
    print(f"full export stages: {stages(full)}")
    print(f"delta export stages: {stages(delta)} (unchanged {delta['counts']['unchanged']:,})")
    for label, record, wall, _ in others:
        print(
            f"{label}: {wall / (n / 1_000_000):.2f} s per million; stages: {stages(record)} "
            f"(unchanged {record['counts']['unchanged']:,})"
        )
    millions = n / 1_000_000

    def per_million(rss: float) -> str:
        if n <= 2 * FIXED_PROFILES:
            return "n/a (too few profiles)"
        return f"{(rss - fixed_rss) / (millions - FIXED_PROFILES / 1_000_000):.0f} MB per million profiles"

    print(
        f"full export / raw baseline: {full_wall / base:.2f}x the baseline's time; memory beyond the "
        f"{fixed_rss:.0f} MB of a full export of {FIXED_PROFILES:,}: full {per_million(full_rss)}, "
        f"delta {per_million(delta_rss)}"
    )
    peak = max(full_rss, delta_rss)
    delta_per_million = delta_wall / millions
    print(
        f"targets: >= 50,000 contacts/s end to end: {'met' if n / full_wall >= 50_000 else 'NOT met'}; "
        f"full <= 1.5x the baseline: {'met' if full_wall <= 1.5 * base else 'NOT met'}; "
        + (
            f"peak RSS < 300 MB: {'met' if peak < 300 else 'NOT met'}; "
            if n <= 3_000_000
            else "peak RSS < 300 MB: set up to 3,000,000 profiles; "
        )
        + f"within a Flex instance's 2,048 MB: {'met' if peak < 2048 else 'NOT met'}; "
        + (
            f"delta < 3 s per million: {'met' if delta_per_million < 3 else 'NOT met'} ({delta_per_million:.2f} s)"
            if n >= 1_000_000
            else "delta < 3 s per million: measured from 1,000,000 profiles"
        )
    )


if __name__ == "__main__":
    sys.exit(main())
