"""The bench's figures, printed: the runs side by side, the stages, memory per million profiles,
and each target met or not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tools.bench.measure import CliRun

FIXED_PROFILES = 100_000  # the export whose peak RSS is taken as the part that does not grow
DATA_KINDS = ("upserts", "imports", "uploads", "field definitions")


@dataclass(frozen=True)
class BenchFigures:
    """What the main bench measured of ``n`` profiles: the full export, the delta after
    ``changed`` rows changed, the other deltas by label, the raw baseline's seconds, and the peak
    RSS of a full export of FIXED_PROFILES (the part of the memory that does not grow)."""

    n: int
    full: CliRun
    delta: CliRun
    changed: int
    others: list[tuple[str, CliRun]]
    baseline: float
    fixed_rss: float


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report_bulk(n: int, full: CliRun, by_upsert: dict[str, int], bulk: CliRun, by_import: dict[str, int]) -> None:
    """The first export by upsert and by CSV import, side by side: requests by kind, time, memory."""
    print(
        f"  first export of {n:,} by CSV import: {bulk.wall:.2f}s, peak RSS {bulk.rss:.0f} MB{bulk.when} "
        f"({bulk.record['status']})"
    )
    for label, kinds, run in (("upsert", by_upsert, full), ("import", by_import, bulk)):
        data = sum(kinds.get(kind, 0) for kind in DATA_KINDS)
        listed = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
        print(f"    by {label}: {data} requests for the data ({listed}); {run.wall:.1f}s, peak RSS {run.rss:.0f} MB")
    data = sum(by_import.get(kind, 0) for kind in DATA_KINDS)
    print(
        f"    import: at most 5 requests for the data (polls apart): {met(data <= 5)}; "
        f"memory not above the upsert path's: {met(bulk.rss <= full.rss)}",
        flush=True,
    )


def report(figures: BenchFigures) -> None:
    print()
    _table(figures)
    print()
    _stages(figures)
    _memory(figures)
    _targets(figures)


def _stages_of(record: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.2f}s" for k, v in record["timings"].items() if k != "total")


def _table(figures: BenchFigures) -> None:
    n = figures.n
    print("| run | contacts sent | wall (s) | contacts/s | peak RSS (MB) | status |")
    print("|---|---:|---:|---:|---:|---|")

    def row(label: str, run: CliRun) -> str:
        sent = run.record["counts"]["sent"]
        return f"| {label} | {sent:,} | {run.wall:.2f} | {n / run.wall:,.0f} | {run.rss:.0f} | {run.record['status']} |"

    print(row("full export", figures.full))
    print(row(f"delta ({figures.changed:,} changed)", figures.delta))
    for label, run in figures.others:
        print(row(label, run))
    print(f"| raw baseline | {n:,} | {figures.baseline:.2f} | {n / figures.baseline:,.0f} | - | - |")


def _stages(figures: BenchFigures) -> None:
    delta = figures.delta.record
    print(f"full export stages: {_stages_of(figures.full.record)}")
    print(f"delta export stages: {_stages_of(delta)} (unchanged {delta['counts']['unchanged']:,})")
    for label, run in figures.others:
        print(
            f"{label}: {run.wall / (figures.n / 1_000_000):.2f} s per million; stages: {_stages_of(run.record)} "
            f"(unchanged {run.record['counts']['unchanged']:,})"
        )


def _memory(figures: BenchFigures) -> None:
    n, fixed_rss = figures.n, figures.fixed_rss
    millions = n / 1_000_000

    def per_million(rss: float) -> str:
        if n <= 2 * FIXED_PROFILES:
            return "n/a (too few profiles)"
        return f"{(rss - fixed_rss) / (millions - FIXED_PROFILES / 1_000_000):.0f} MB per million profiles"

    print(
        f"full export / raw baseline: {figures.full.wall / figures.baseline:.2f}x the baseline's time; memory "
        f"beyond the {fixed_rss:.0f} MB of a full export of {FIXED_PROFILES:,}: full {per_million(figures.full.rss)}, "
        f"delta {per_million(figures.delta.rss)}"
    )


def _targets(figures: BenchFigures) -> None:
    n, full, delta = figures.n, figures.full, figures.delta
    peak = max(full.rss, delta.rss)
    delta_per_million = delta.wall / (n / 1_000_000)
    print(
        f"targets: >= 50,000 contacts/s end to end: {met(n / full.wall >= 50_000)}; "
        f"full <= 1.5x the baseline: {met(full.wall <= 1.5 * figures.baseline)}; "
        + (
            f"peak RSS < 300 MB: {met(peak < 300)}; "
            if n <= 3_000_000
            else "peak RSS < 300 MB: set up to 3,000,000 profiles; "
        )
        + f"within a Flex instance's 2,048 MB: {met(peak < 2048)}; "
        + (
            f"delta < 3 s per million: {met(delta_per_million < 3)} ({delta_per_million:.2f} s)"
            if n >= 1_000_000
            else "delta < 3 s per million: measured from 1,000,000 profiles"
        )
    )
