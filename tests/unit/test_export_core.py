"""The orchestrator with fake edges: no network, no storage service."""

import dataclasses
import json
import threading
from datetime import UTC

import pytest

from shared.adapters.sendgrid_errors import refusal
from shared.errors import SendGridAuthError, SendGridError
from shared.run.export import queue_run, run_export
from shared.run.ports import Edges
from shared.run.records import ExportOptions, RunRecordStore
from shared.run.runtime import Runtime, Tuning
from shared.settings import Settings
from tests.fakes import LIST_ID, DictSecrets, FakeSendGrid, InMemoryBlobStore, InMemoryLock, ListQueue, serving


def setup(destination_overrides=None, csv_text=None, sendgrid=None):
    destination = {
        "name": "newsletter",
        "data_privacy_consent": True,
        "list": {"id": LIST_ID},
        "segments": [{"path": "people.csv"}],
    }
    destination.update(destination_overrides or {})
    exports = InMemoryBlobStore({"destinations.json": json.dumps({"destinations": [destination]}).encode()})
    rows = csv_text or "Email,FirstName\na@example.com,Ann\nb@example.com,Bo\nbad,Cy\nA@example.com,Dup\n"
    segments = InMemoryBlobStore({"people.csv": rows.encode()})
    fake = sendgrid or FakeSendGrid()
    settings = Settings.from_env({"EXPORT_STORAGE": "UseDevelopmentStorage=true", "SECRETS_SOURCE": "environment"})
    edges = Edges(
        segments=segments,
        exports=exports,
        secrets=DictSecrets({"sendgrid-api-key": "k" * 20}),
        sendgrid=serving(fake),
        lock=InMemoryLock(),
        jobs=ListQueue(),
        records=RunRecordStore(exports),
    )
    # strict order for the assertions; concurrency has its own test
    runtime = Runtime(settings, edges, Tuning(send_concurrency=1, job_poll_interval=0.001))
    return runtime, fake


def run(runtime, **options):
    return run_export(runtime, queue_run(runtime, "newsletter", trigger="cli", options=ExportOptions(**options)))


def stored(runtime, record):
    return json.loads(runtime.edges.exports.blobs[f"runs/newsletter/{record.run_id}.json"])


def test_a_run_sends_valid_unique_contacts_and_records_everything():
    runtime, fake = setup()
    record = run(runtime)
    assert [c["email"] for c in fake.bodies[0]["contacts"]] == ["a@example.com", "b@example.com"]
    assert fake.bodies[0]["list_ids"] == [LIST_ID]
    assert record.counts.as_dict() == stored(runtime, record)["counts"]
    c = record.counts
    assert (c.read, c.invalid, c.duplicate, c.sent, c.accepted) == (4, 1, 1, 2, 2)
    assert record.counts.conserved()
    assert record.status == "completed_with_errors"
    rejects = runtime.edges.exports.blobs[record.rejects_blob].decode()
    assert rejects.splitlines()[1] == "people.csv,4,bad,invalid,,invalid email address"
    assert fake.closed


def test_without_consent_nothing_is_sent_and_the_record_says_why():
    runtime, fake = setup({"data_privacy_consent": False})
    record = run(runtime)
    assert record.status == "failed" and fake.bodies == []
    assert "data_privacy_consent" in record.errors[0]
    assert stored(runtime, record)["status"] == "failed"


def test_more_valid_profiles_than_max_profiles_fails_before_sending():
    runtime, fake = setup({"max_profiles": 1})
    record = run(runtime)
    assert record.status == "failed" and fake.bodies == []
    assert "max_profiles (1)" in record.errors[0]
    assert record.counts.conserved()


def test_a_dry_run_sends_nothing_but_counts_what_would_be_sent():
    runtime, fake = setup({"list": {"name": "Fresh", "create_if_missing": True}})
    record = run(runtime, dry_run=True)
    assert fake.bodies == [] and fake.created_lists == []
    assert (record.counts.sent, record.counts.would_send) == (0, 2) and record.counts.conserved()
    assert record.lists == [{"id": None, "name": "Fresh", "action": "would_create"}]
    assert record.batches[0]["status"] == "dry_run"


def test_a_missing_list_without_create_fails_naming_it():
    runtime, fake = setup({"list": {"name": "Nope"}})
    record = run(runtime)
    assert record.status == "failed" and "list named 'Nope'" in record.errors[0]
    assert fake.bodies == []


def test_a_400_naming_contacts_isolates_them_and_sends_the_rest():
    rows = "Email\n" + "".join(f"p{i}@example.com\n" for i in range(5))
    error = refusal(
        "PUT /v3/marketing/contacts: SendGrid answered 400: contacts[1].email: email is invalid",
        status=400,
        errors=[{"field": "contacts[1].email", "message": "email is invalid"}],
    )
    runtime, fake = setup(csv_text=rows, sendgrid=FakeSendGrid(fail_batches={0: error}))
    runtime.tuning = dataclasses.replace(runtime.tuning, max_batch_contacts=2)
    record = run(runtime)
    assert [[c["email"] for c in b["contacts"]] for b in fake.bodies] == [
        ["p0@example.com", "p1@example.com"],
        ["p0@example.com"],
        ["p2@example.com", "p3@example.com"],
        ["p4@example.com"],
    ]
    assert record.counts.errored == 1 and record.counts.accepted == 4
    assert record.batches[0]["isolated"] == 1 and record.batches[0]["status"] == "completed"
    assert record.status == "completed_with_errors" and record.counts.conserved()
    lines = runtime.edges.exports.blobs[record.rejects_blob].decode().splitlines()
    assert lines[1] == "people.csv,3,p1@example.com,errored,,contacts[1].email: email is invalid"


def test_a_400_naming_no_contact_fails_the_whole_batch_with_sendgrids_message():
    rows = "Email\n" + "".join(f"p{i}@example.com\n" for i in range(3))
    error = refusal(
        "PUT /v3/marketing/contacts: SendGrid answered 400: list_ids[0]: list does not exist",
        status=400,
        errors=[{"field": "list_ids[0]", "message": "list does not exist"}],
    )
    runtime, _ = setup(csv_text=rows, sendgrid=FakeSendGrid(fail_batches={0: error}))
    record = run(runtime)
    assert record.counts.errored == 3 and record.batches[0]["status"] == "refused"
    assert "list does not exist" in record.batches[0]["error"]


@pytest.mark.parametrize("error", [SendGridAuthError("401", status=401), SendGridError("down", status=503)])
def test_an_unreachable_or_refusing_sendgrid_stops_sending_and_fails_the_run(error):
    rows = "Email\n" + "".join(f"p{i}@example.com\n" for i in range(6))
    runtime, fake = setup(csv_text=rows, sendgrid=FakeSendGrid(fail_batches={0: error}))
    runtime.tuning = dataclasses.replace(runtime.tuning, max_batch_contacts=2)
    record = run(runtime)
    assert len(fake.bodies) == 1  # the later batches were not attempted
    assert record.status == "failed"
    assert record.counts.errored == 6 and record.counts.sent == 6 and record.counts.conserved()
    assert [b["status"] for b in record.batches] == [
        "refused" if error.status == 401 else "undelivered",
        "not_sent",
        "not_sent",
    ]


def test_a_failed_import_job_counts_its_contacts_errored():
    runtime, _ = setup(sendgrid=FakeSendGrid(job_status="failed"))
    record = run(runtime)
    assert record.counts.accepted == 0 and record.counts.errored == 2
    assert record.status == "completed_with_errors"


def test_run_ids_sort_by_time_even_within_one_second():
    from datetime import datetime, timedelta

    from shared.names import RUN_ID_PATTERN
    from shared.run.records import new_run_id

    start = datetime(2026, 11, 23, 3, 15, 0, tzinfo=UTC)
    ids = [new_run_id(start + timedelta(milliseconds=ms)) for ms in (0, 1, 250, 999, 1000)]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert all(RUN_ID_PATTERN.match(i) for i in ids) and ids[0].startswith("20261123T031500Z-000")


def test_with_batches_in_flight_an_outage_stops_the_rest_and_every_row_is_counted():
    rows = "Email\n" + "".join(f"p{i}@example.com\n" for i in range(20))
    runtime, fake = setup(csv_text=rows, sendgrid=FakeSendGrid(fail_batches={0: SendGridError("down", status=503)}))
    runtime.tuning = dataclasses.replace(runtime.tuning, max_batch_contacts=2)
    runtime.tuning = dataclasses.replace(runtime.tuning, send_concurrency=3)
    record = run(runtime)
    assert record.status == "failed"
    assert 1 <= len(fake.bodies) <= 3  # at most the batches already in flight went out
    statuses = [b["status"] for b in record.batches]
    assert statuses[0] == "undelivered" and statuses.count("not_sent") >= 7
    assert record.counts.sent == 20 and record.counts.accepted + record.counts.errored == 20
    assert record.counts.conserved()


class WatchingStore(InMemoryBlobStore):
    """Notes, as the run's own read reaches the last file, whether any batch was sent yet."""

    def __init__(self, blobs, fake, last: str):
        super().__init__(blobs, chunk_size=4096)
        self.fake, self.last = fake, last
        self.sent_before_last_file: bool | None = None

    def iter_chunks(self, name, snapshot=None, **pin):
        if name == self.last and threading.current_thread() is threading.main_thread():
            for _ in range(200):  # up to 2 s for the sender to catch up
                if self.fake.bodies:
                    break
                threading.Event().wait(0.01)
            self.sent_before_last_file = bool(self.fake.bodies)
        yield from super().iter_chunks(name, snapshot, **pin)


def many_rows(start: int, count: int) -> str:
    return "Email,FirstName\n" + "".join(f"p{i}@example.com,N{i}\n" for i in range(start, start + count))


@pytest.mark.parametrize(
    ("max_profiles", "list_name", "overlaps"),
    [(1000, "Newsletter", True), (550, "Newsletter", False), (550, "Fresh", True)],
)
def test_sending_starts_while_reading_once_max_profiles_is_proven(max_profiles, list_name, overlaps):
    # 600 rows, 50 of them duplicates: 550 valid. With 1000 the line count proves it. With 550 the
    # lines could hold more: a run that must create its list counts the valid profiles first, and
    # then sends as batches fill; one whose list exists reads on, holding its batches until the
    # read has counted them.
    destination = {"max_profiles": max_profiles, "segments": [{"path": "in/"}]}
    destination["list"] = {"name": list_name, "create_if_missing": True}
    runtime, fake = setup(destination)
    blobs = {"in/a.csv": many_rows(0, 300).encode(), "in/b.csv": many_rows(250, 300).encode()}
    runtime.edges.segments = WatchingStore(blobs, fake, last="in/b.csv")
    runtime.tuning = dataclasses.replace(runtime.tuning, max_batch_contacts=100)
    record = run(runtime)
    assert record.status == "succeeded", record.errors
    assert runtime.edges.segments.sent_before_last_file is overlaps
    sent = [c["email"] for body in fake.bodies for c in body["contacts"]]
    assert sorted(sent) == sorted(f"p{i}@example.com" for i in range(550))
    assert record.counts.duplicate == 50 and record.counts.conserved()


def test_a_run_past_max_profiles_whose_list_exists_sends_nothing_and_says_what_it_would_have_sent():
    runtime, fake = setup({"max_profiles": 549, "segments": [{"path": "in/"}]})
    runtime.edges.segments = InMemoryBlobStore(
        {"in/a.csv": many_rows(0, 300).encode(), "in/b.csv": many_rows(250, 300).encode()}
    )
    runtime.tuning = dataclasses.replace(runtime.tuning, max_batch_contacts=100)
    record = run(runtime)
    assert record.status == "failed" and "nothing was sent" in record.errors[0] and fake.bodies == []
    assert (record.counts.sent, record.counts.would_send) == (0, 550) and record.counts.conserved()


def test_a_run_past_max_profiles_fails_before_any_list_is_created_or_anything_is_sent():
    runtime, fake = setup(
        {"max_profiles": 549, "segments": [{"path": "in/"}], "list": {"name": "Fresh", "create_if_missing": True}}
    )
    runtime.edges.segments = InMemoryBlobStore(
        {"in/a.csv": many_rows(0, 300).encode(), "in/b.csv": many_rows(250, 300).encode()}
    )
    record = run(runtime)
    assert record.status == "failed" and "no list was created" in record.errors[0]
    assert fake.bodies == [] and fake.created_lists == [] and record.lists == []
    assert record.counts.read == 0 and record.counts.sent == 0


def test_an_escaped_undecodable_character_in_json_lines_is_a_rejected_row_not_a_crash():
    runtime, fake = setup({"segments": [{"path": "people.jsonl"}]})
    lines = '{"Email": "a@example.com", "FirstName": "\\udcff"}\n{"Email": "b@example.com", "FirstName": "Bo"}\n'
    runtime.edges.segments = InMemoryBlobStore({"people.jsonl": lines.encode()})
    record = run(runtime)
    assert [c["email"] for body in fake.bodies for c in body["contacts"]] == ["b@example.com"]
    assert record.counts.invalid == 1 and record.counts.conserved()
    assert "undecodable bytes (not UTF-8) in column 2" in runtime.edges.exports.blobs[record.rejects_blob].decode()


@pytest.mark.parametrize(("changed_first", "sent"), [(True, ["Annie"]), (False, [])])
def test_the_first_row_of_an_email_wins_over_an_unchanged_one_in_the_same_chunk(changed_first, sent):
    runtime, fake = setup(csv_text="Email,FirstName\na@example.com,Ann\n")
    run(runtime)
    rows = ["a@example.com,Annie", "a@example.com,Ann"]
    if not changed_first:
        rows.reverse()
    runtime.edges.segments.blobs["people.csv"] = ("Email,FirstName\n" + "\n".join(rows) + "\n").encode()
    fake.bodies.clear()
    record = run(runtime)
    assert [c["first_name"] for body in fake.bodies for c in body["contacts"]] == sent
    counts = record.counts
    assert (counts.sent, counts.unchanged, counts.duplicate) == (len(sent), 1 - len(sent), 1)
    assert record.counts.conserved()


def test_freed_memory_is_handed_back_after_each_file():
    runtime, _ = setup({"segments": [{"path": "in/"}]})
    runtime.edges.segments = InMemoryBlobStore(
        {"in/a.csv": many_rows(0, 30).encode(), "in/b.csv": many_rows(30, 30).encode()}
    )
    released: list[int] = []
    runtime.tuning = dataclasses.replace(runtime.tuning, release_memory=lambda: released.append(len(released)))
    record = run(runtime)
    assert record.counts.sent == 60 and released == [0, 1]


def test_mirror_mode_on_a_list_another_destination_names_is_refused_whatever_its_key():
    from shared.errors import ConfigError
    from shared.inputs.config import parse_destinations
    from shared.run.destinations import refuse_mirror_on_shared_lists

    def config(other_list):
        mirror = {"name": "news", "data_privacy_consent": True, "mode": "mirror", "list": {"id": LIST_ID}}
        other = {"name": "loyalty", "data_privacy_consent": True, "api_key_secret": "other-key", "list": other_list}
        mirror["segments"] = other["segments"] = [{"path": "a.csv"}]
        return parse_destinations(json.dumps({"destinations": [mirror, other]}))

    found: list[dict[str, str] | None] = [{"id": LIST_ID, "name": "Newsletter"}]
    for other_list in ({"id": LIST_ID}, {"name": "Newsletter"}):
        cfg = config(other_list)
        with pytest.raises(ConfigError, match=r"'loyalty'.*another SendGrid account"):
            refuse_mirror_on_shared_lists(cfg, cfg.get("news"), found)
    cfg = config({"name": "Loyalty"})
    refuse_mirror_on_shared_lists(cfg, cfg.get("news"), found)  # a list of its own: fine


def test_a_stored_record_whose_status_this_version_does_not_know_is_listed_not_skipped_as_corrupt():
    exports = InMemoryBlobStore()
    stored = {"run_id": "20260101T000000Z-00000000", "destination": "newsletter", "trigger": "cli", "status": "paused"}
    exports.blobs["runs/newsletter/20260101T000000Z-00000000.json"] = json.dumps(stored).encode()
    (record,) = RunRecordStore(exports).recent("newsletter")
    assert record.status == "paused" and record.to_dict()["status"] == "paused"


def test_a_stored_record_keeps_counts_this_version_does_not_know_and_refuses_counts_that_are_not_numbers():
    exports = InMemoryBlobStore()
    base = {"destination": "newsletter", "trigger": "cli", "status": "succeeded"}
    kept = base | {"run_id": "20260101T000000Z-00000001", "counts": {"read": 2, "sent": 2, "accepted": 2, "bounced": 1}}
    bad = base | {"run_id": "20260101T000000Z-00000002", "counts": {"read": "2"}}
    for stored in (kept, bad):
        exports.blobs[f"runs/newsletter/{stored['run_id']}.json"] = json.dumps(stored).encode()
    store = RunRecordStore(exports)
    (record,) = store.recent("newsletter")  # the one with a count that is no number is skipped
    assert record.run_id == kept["run_id"]
    assert record.counts.read == 2 and record.to_dict()["counts"]["bounced"] == 1
    store.save(record)  # saved again (the abandoned-run scan does): the count it did not know stays
    assert json.loads(exports.blobs[f"runs/newsletter/{kept['run_id']}.json"])["counts"]["bounced"] == 1


def test_a_first_run_makes_room_for_its_keys_once_the_scan_has_counted_the_rows(monkeypatch):
    from shared.run.delta.run_keys import RunKeys

    rows = 120_000
    lines = (f"p{i}@example.com,Ann\n" if i % 4 else "not an email,Bo\n" for i in range(rows))
    runtime, _ = setup({"max_profiles": rows + 1}, csv_text="Email,FirstName\n" + "".join(lines))
    runtime.edges.segments.chunk_size = 64 * 1024
    told: list[tuple[int, int, int]] = []
    expect = RunKeys.expect

    def spy(self, total, read):
        expect(self, total, read)
        told.append((total, read, self.others.nbytes))

    monkeypatch.setattr(RunKeys, "expect", spy)
    record = run(runtime)
    assert record.counts.sent == rows * 3 // 4
    [(total, read, nbytes)] = told
    # The scan's bound, told once enough rows were read; three rows in four make a key.
    assert total == rows and read >= 50_000
    assert 8 * (5 * (rows * 3 // 4) // 3) <= nbytes <= 8 * (5 * (rows * 3 // 4) * 21 // 20 // 3 + 8)


def test_a_state_holding_a_key_twice_does_not_gain_a_third_copy():
    # A damaged state (nothing at load checks that keys are distinct): a delta's updates may then
    # hold a key twice, and the merge must check them rather than trust the run.
    from array import array

    from shared.run.delta.sync_state import SyncState, state_blob_name

    runtime, _ = setup(csv_text="Email,FirstName\na@example.com,Ann\na@example.com,Bob\nx@example.com,Xi\n")
    assert run(runtime).counts.sent == 2
    exports = runtime.edges.exports
    state = SyncState.from_bytes(exports.blobs[state_blob_name("newsletter")], with_emails=False, source="s")
    ka, kx = state.keys
    SyncState(array("Q", [ka, ka, kx]), array("Q", [1, 2, state.fingerprints[1]])).save(exports, "newsletter")
    run(runtime)
    after = SyncState.from_bytes(exports.blobs[state_blob_name("newsletter")], with_emails=False, source="s")
    assert list(after.keys).count(ka) <= 2 and list(after.keys).count(kx) == 1


def test_the_room_made_for_keys_follows_lines_not_records(monkeypatch):
    # Each record spans three lines (a quoted line break twice): the scan counts lines, and so
    # must the share of them that made keys.
    from shared.run.delta.run_keys import RunKeys

    records = 150_000
    body = "".join(f'p{i}@example.com,"Ann\nMarie\nX"\n' for i in range(records))
    runtime, _ = setup({"max_profiles": 3 * records + 10}, csv_text="Email,FirstName\n" + body)
    runtime.edges.segments.chunk_size = 64 * 1024
    told: list[int] = []
    expect = RunKeys.expect

    def spy(self, total, read):
        expect(self, total, read)
        told.append(self.others.nbytes)

    monkeypatch.setattr(RunKeys, "expect", spy)
    assert run(runtime).counts.sent == records
    [nbytes] = told
    assert 8 * (5 * records // 3) <= nbytes <= 8 * (5 * records * 21 // 20 // 3 + 8) * 1.01


@pytest.mark.parametrize("when", ["during the run", "as the lock is released"])
def test_an_interrupt_fails_a_run_that_had_not_ended_and_leaves_one_that_had(when):
    from contextlib import contextmanager

    from shared.run.worker import INTERRUPTED, run_locked

    runtime, fake = setup()
    lock = runtime.edges.lock

    class InterruptedLock:
        @contextmanager
        def hold(self, destination, run_id):
            with lock.hold(destination, run_id) as held:
                yield held
            raise KeyboardInterrupt  # Ctrl-C (or SIGTERM) as the lease is let go

    def interrupted(*args):
        raise KeyboardInterrupt  # Ctrl-C as the run reaches SendGrid

    if when == "during the run":
        runtime.edges.sendgrid = interrupted
    else:
        runtime.edges.lock = InterruptedLock()
    record = queue_run(runtime, "newsletter", trigger="cli")
    with pytest.raises(KeyboardInterrupt):
        run_locked(runtime, record)
    stored = runtime.edges.records.load("newsletter", record.run_id)
    assert stored is not None
    if when == "during the run":
        assert stored.status == "failed" and stored.errors[-1] == INTERRUPTED
    else:
        assert stored.status == "completed_with_errors"  # as the run ended: one of its rows is invalid
        assert INTERRUPTED not in stored.errors and fake.bodies
