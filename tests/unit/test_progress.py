"""A run's progress: told every interval, the record saved every few seconds, bounded cost."""

from __future__ import annotations

from shared.run.progress import LogProgress, ProgressSnapshot, RunProgress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Sink:
    def __init__(self) -> None:
        self.seen: list[ProgressSnapshot] = []
        self.closed = False

    def update(self, snapshot: ProgressSnapshot) -> None:
        self.seen.append(snapshot)

    def close(self) -> None:
        self.closed = True


def test_the_sink_is_told_every_interval_and_the_record_saved_every_few_seconds():
    clock, sink, saves = Clock(), Sink(), []
    progress = RunProgress(sink, lambda snapshot: saves.append(snapshot.elapsed), interval=2, save_every=5, clock=clock)
    progress.rows_total = 1000
    for step in range(100):  # a tick every 0.1 s for 10 s
        clock.now += 0.1
        progress.rows_read = 10 * step
        progress.tick()
    assert 4 <= len(sink.seen) <= 5 and 1 <= len(saves) <= 2
    last = sink.seen[-1]
    assert last.rows_total == 1000 and last.rows_read >= 800 and last.eta is not None and last.eta < 3


def test_expected_batches_and_eta_extrapolate_from_what_was_read():
    clock = Clock()
    progress = RunProgress(Sink(), lambda snapshot: None, clock=clock)
    progress.rows_total, progress.rows_read, progress.batches_spooled = 1000, 250, 2
    clock.now += 10
    snapshot = progress.snapshot()
    assert snapshot.batches_expected == 8 and round(snapshot.eta or 0) == 30
    progress.reading_done = True
    assert progress.snapshot().eta is None and progress.snapshot().batches_expected == 2


def test_a_line_for_a_person_says_counts_never_contents(caplog):
    snapshot = ProgressSnapshot("reading", 400_000, 1_000_000, 12, 5, 34, 9.5, 14.2)
    text = snapshot.describe()
    assert "400,000 of at most 1,000,000 rows read (40%)" in text and "12 sent, 5 confirmed of ~34" in text
    assert "ETA 14s" in text
    LogProgress().update(snapshot)
    assert any("progress: reading" in r.getMessage() for r in caplog.records)


def test_closing_tells_the_end():
    sink = Sink()
    progress = RunProgress(sink, lambda snapshot: None)
    progress.stage = "done"
    progress.close()
    assert sink.closed and sink.seen[-1].stage == "done"


def test_a_cancelled_scan_stops_at_the_next_chunk_not_at_the_end_of_its_file():
    import threading
    import time as clock

    from shared.inputs.config import parse_destinations
    from shared.inputs.segments import SegmentFile
    from shared.run.profile_limit import BoundScan
    from tests.fakes import InMemoryBlobStore

    class SlowStore(InMemoryBlobStore):
        def iter_chunks(self, name, snapshot=None, **pin):
            for chunk in super().iter_chunks(name, snapshot, **pin):
                clock.sleep(0.01)  # 4,000 chunks: 40 s to read through
                yield chunk

    rows = "Email\n" + "".join(f"p{i}@example.com\n" for i in range(1500))
    store = SlowStore({"big.csv": rows.encode()}, chunk_size=8)
    config = parse_destinations(
        '{"destinations": [{"name": "d", "data_privacy_consent": true, "list": {"id": "x"},'
        ' "segments": [{"path": "big.csv"}], "max_profiles": 1000000}]}'
    )
    destination = config.get("d")
    told = threading.Event()
    scan = BoundScan(
        store,
        [(destination.segments[0], [SegmentFile("big.csv", "csv")])],
        destination,
        1 << 20,
        lambda bound: told.set(),
    )
    scan.start()
    clock.sleep(0.2)
    started = clock.monotonic()
    scan.cancel()
    assert clock.monotonic() - started < 1.0 and scan.bound is None and not told.is_set()
