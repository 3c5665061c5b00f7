"""What the command line shows a person: a run's summary, the runs table, the preflight checklist.

Pure functions from run records to lines of text, so that each can be tested without a terminal.
Counts only, never a row's contents. A machine gets the JSON instead (``--json``, or stdout that is
not a terminal).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.json_input import JsonObject
from shared.run.records import RunRecord, RunStatus

PROG = "sendgrid-export"
# The summary is read on one screen: at most this many lines, whatever the run did.
SUMMARY_MAX_LINES = 15
_MAX_DETAIL = 90  # a failed run's reason, cut to fit a terminal line


def run_summary(record: RunRecord, prog: str = PROG) -> list[str]:
    """At most :data:`SUMMARY_MAX_LINES` lines: status, counts, lists, rejects, what to do next.
    ``prog``: the command as the person typed it, so that the next steps work when pasted."""
    counts = record.counts
    dry = record.options.dry_run
    lines = []
    if dry:
        lines.append("DRY RUN: nothing was sent to SendGrid and no list was created.")
    lines.append(
        f"run {record.run_id} of '{record.destination}': {record.status}"
        f"{' (dry run)' if dry else ''} in {duration(record.started_at, record.finished_at)}"
    )
    # Outside a dry run, would_send holds rows a run stopped before sending (a guard, a failure):
    # they were not sent, and the summary says so rather than adding them to what was.
    outcome = (
        f"{counts.sent + counts.would_send:,} to send"
        if dry
        else f"{counts.sent:,} sent" + (f", {counts.would_send:,} not sent" if counts.would_send else "")
    )
    lines.append(
        f"  rows read {counts.read:,}: {counts.invalid:,} invalid, {counts.duplicate:,} duplicate, "
        f"{counts.unchanged:,} unchanged, {outcome}"
    )
    if not dry and counts.sent:
        lines.append(
            f"  SendGrid: {counts.accepted:,} accepted ({counts.created:,} new, {counts.updated:,} updated), "
            f"{counts.errored:,} refused, in {len(record.batches)} batch(es)"
        )
    if record.removals.get("planned") or record.removals.get("done"):
        lines.append(f"  removals: {record.removals.get('done', 0):,} of {record.removals.get('planned', 0):,} done")
    lists = ", ".join(f"'{item.get('name')}' ({item.get('action', 'used')})" for item in record.lists[:3])
    if lists:
        lines.append(f"  lists: {lists}" + (f" and {len(record.lists) - 3} more" if len(record.lists) > 3 else ""))
    for error in record.errors[:2]:
        lines.append(f"  error: {shorten(error, 200)}")
    if record.rejects_blob:
        lines.append(f"  rejected rows ({counts.rejected:,}): blob {record.rejects_blob} in the exports container")
    lines.extend(_next_steps(record, prog))
    return lines[:SUMMARY_MAX_LINES]


def _next_steps(record: RunRecord, prog: str) -> list[str]:
    name, run_id = record.destination, record.run_id
    steps = []
    if record.rejects_blob:
        steps.append(f"  see why rows were rejected: {prog} rejects {name} {run_id}")
    if record.status == RunStatus.FAILED:
        steps.append(f"  find what is wrong: {prog} check {name}")
    elif record.status == RunStatus.SKIPPED:
        steps.append(f"  another run holds the destination: {prog} runs {name}")
    elif record.options.dry_run:
        steps.append(f"  send for real: {prog} export {name}")
    steps.append(f"  the whole record: {prog} runs {name} --json --limit 1")
    return ["next:", *steps]


# A running run saves its progress every few seconds (record_save_every, 5 s): one silent for
# sixty times that has most likely lost its process (kill -9, a recycled instance). Only shown:
# the record is closed by the next run of its destination, under the lock.
STALE_AFTER_SECONDS = 300.0

RUNS_COLUMNS = ("run id", "status", "trigger", "read", "sent", "rejected", "duration", "detail")
_NUMERIC = {3, 4, 5, 6}


def runs_table(records: list[RunRecord], now: datetime | None = None) -> list[str]:
    if not records:
        return []
    rows = [RUNS_COLUMNS] + [run_row(r, now) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(RUNS_COLUMNS))]
    out = []
    for row in rows:
        cells = [c.rjust(w) if i in _NUMERIC else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        out.append("  ".join(cells).rstrip())
    return out


def run_row(record: RunRecord, now: datetime | None = None) -> tuple[str, ...]:
    """One run, with counts that agree with one another and with ``rejects``.

    While a run goes its ``read`` count is only final at the end; the progress it saves says how
    many rows it has read, which is never fewer than it has sent. ``rejected`` is shown only once
    a rejects file exists (what ``rejects`` prints), ``-`` before.
    """
    counts = record.counts
    # A stored record is outside text: its progress is read as the JSON it may be, whatever its type says.
    progress: JsonObject = dict(record.progress) if isinstance(record.progress, dict) else {}
    running = record.status == RunStatus.RUNNING
    read = max(counts.read, _int(progress.get("rows_read")), counts.sent) if running else counts.read
    sent = counts.sent + counts.would_send if record.options.dry_run else counts.sent
    rejected = str(counts.rejected) if record.rejects_blob else ("-" if running or counts.rejected else "0")
    status = str(record.status) + (" (dry run)" if record.options.dry_run else "")
    return (
        record.run_id,
        status,
        record.trigger,
        str(read),
        ("would " if record.options.dry_run and sent else "") + str(sent),
        rejected,
        duration(record.started_at, record.finished_at, now=now if running else None),
        _detail(record, progress, now),
    )


def _silent_for(record: RunRecord, progress: JsonObject, now: datetime | None) -> float | None:
    """Seconds since a running record's last progress save (its start plus the elapsed time it
    saved), or None if that cannot be told."""
    if now is None or not record.started_at:
        return None
    try:
        started = datetime.fromisoformat(record.started_at)
        elapsed = progress.get("elapsed_seconds")
        saved = started + timedelta(seconds=float(elapsed) if isinstance(elapsed, (int, float)) else 0.0)
        return (now - saved).total_seconds()
    except (ValueError, TypeError, OverflowError):
        return None


def _detail(record: RunRecord, progress: JsonObject, now: datetime | None = None) -> str:
    status = record.status
    if status == RunStatus.RUNNING:
        silent = _silent_for(record, progress, now)
        if silent is not None and silent > STALE_AFTER_SECONDS:
            return f"no progress for {_seconds(silent)}: probably stopped; the next run closes it"
        if not progress:  # saved every few seconds: a run younger than that has none yet
            return "all rows read; sending" if record.counts.read else "started; no progress saved yet"
        parts = [str(progress.get("stage") or "starting")]
        total, read = _int(progress.get("rows_total")), _int(progress.get("rows_read"))
        if total:
            parts.append(f"{min(100, read * 100 // total)}%")
        eta = progress.get("eta_seconds")
        if isinstance(eta, (int, float)):
            parts.append(f"ETA {_seconds(float(eta))}")
        return " ".join(parts)
    if status in (RunStatus.FAILED, RunStatus.SKIPPED) or (status != RunStatus.SUCCEEDED and record.errors):
        return shorten(record.errors[0], _MAX_DETAIL) if record.errors else ""
    return ""


def check_lines(checks: list[JsonObject]) -> list[str]:
    lines = [f"{'ok  ' if c.get('ok') else 'FAIL'} {c.get('name')}: {c.get('detail')}" for c in checks]
    ok = all(c.get("ok") for c in checks)
    lines.append("ready: an export can run now." if ok else "not ready: fix what FAIL names, then check again.")
    return lines


def duration(started: str | None, finished: str | None, now: datetime | None = None) -> str:
    if not started or not (finished or now):
        return "-"
    try:
        end = datetime.fromisoformat(finished) if finished else now
        assert end is not None
        seconds = (end - datetime.fromisoformat(started)).total_seconds()
    except (ValueError, TypeError):
        return "-"
    return _seconds(seconds) if seconds >= 60 else f"{seconds:.1f}s"


def _seconds(seconds: float) -> str:
    whole = max(0, int(seconds))
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"


def shorten(text: str, width: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _int(value: object) -> int:
    return value if type(value) is int else 0
