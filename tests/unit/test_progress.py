"""A run's progress: told every interval, the record saved every few seconds, bounded cost."""

from __future__ import annotations

from shared.progress import LogProgress, ProgressSnapshot, RunProgress


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
