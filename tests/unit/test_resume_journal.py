"""The sent journal: each accepted job with what it holds, read back by the next run, which
settles the job by its id instead of sending its contacts again."""

from __future__ import annotations

from array import array

import pytest

from shared.run.delta.journal import SyncStateError, journal_for_sent, parse_sent, sent_blob_name, sent_bytes
from shared.run.runtime import JobWaits
from shared.run.send.resume import settle_left_jobs
from tests.fakes import FakeSendGrid, InMemoryBlobStore


def test_a_sent_journal_reads_back_its_job_and_contacts_and_refuses_damage():
    raw = sent_bytes("job-0", array("Q", [1, 2]), array("Q", [3, 4]), ["a@example.com", "b@example.com"])
    job_id, held = parse_sent(raw, "x")
    assert job_id == "job-0" and list(held.keys) == [1, 2] and list(held.fingerprints) == [3, 4]
    assert held.emails == ["a@example.com", "b@example.com"]
    for damaged in (raw[:5], b"SGSENT01\x00\x00", raw[:-20], b"other" + raw):
        with pytest.raises(SyncStateError):
            parse_sent(damaged, "x")


def test_a_stopped_runs_jobs_are_confirmed_by_their_ids_before_anything_is_sent():
    fake = FakeSendGrid(job_status="completed")
    fake.bodies = [{"contacts": [{"email": "a@example.com"}, {"email": "b@example.com"}]}]
    exports = InMemoryBlobStore()
    name = sent_blob_name("newsletter", "run-1", 0, 0)
    exports.blobs[name] = sent_bytes("job-0", array("Q", [1, 2]), array("Q", [3, 4]), None)
    exports.blobs[sent_blob_name("newsletter", "run-1", 1, 0)] = b"damaged"
    summary = settle_left_jobs(fake, exports, "newsletter", JobWaits(seconds=5, interval=0.01, max_interval=0.1))
    assert summary is not None and (summary.jobs, summary.confirmed, summary.damaged) == (1, 2, 1)
    assert not [b for b in exports.blobs if "/sent-" in b]  # settled: nothing left to resume
    assert journal_for_sent(name) == "state/newsletter/journal-run-1-00000-00.bin"
    assert journal_for_sent(name) in exports.blobs  # the state's next load confirms them
    assert settle_left_jobs(fake, exports, "newsletter", JobWaits(seconds=5, interval=0.01, max_interval=0.1)) is None
