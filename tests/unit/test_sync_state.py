import gzip
import random
import struct
from array import array

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.run.delta.identity import RowFingerprinter, email_key
from shared.run.delta.journal import StateUpdates, SyncStateError
from shared.run.delta.sync_state import SyncState
from tests.fakes import InMemoryBlobStore


def updates_of(pairs, with_emails=False):
    updates = StateUpdates()
    for key, fp in pairs:
        updates.add(key, fp, f"p{key}@example.com" if with_emails else None)
    return updates


def entries(state: SyncState) -> dict[int, int]:
    return dict(zip(state.keys, state.fingerprints, strict=True))


def test_keys_and_fingerprints_are_stable_64_bit_values():
    assert email_key("a@example.com") == email_key("a@example.com") != email_key("b@example.com")
    assert 0 <= email_key("a@example.com") < 2**64
    row = "a@example.com,Ann,Oslo"
    same = RowFingerprinter("list-1", "plan", "")
    assert same(row) == RowFingerprinter("list-1", "plan", "")(row)
    assert same(row) != same("a@example.com,Ann,Bergen")
    assert same.many([row, "a@example.com,Ann,Bergen", "\udcff"]) == (
        [same(row), same("a@example.com,Ann,Bergen"), same("\udcff")],
        {2},  # the record with undecodable bytes
    )
    # Anything that shapes the payload is in the context: another list, plan or field set differs.
    assert same(row) != RowFingerprinter("list-2", "plan", "")(row)
    assert same(row) != RowFingerprinter("list-1", "other plan", "")(row)
    assert RowFingerprinter("ab", "c")(row) != RowFingerprinter("a", "bc")(row)  # context parts stay apart
    assert same("\udcff") != same("\udcfe")  # undecodable bytes are hashed as they were


def test_merge_supersedes_by_key_removes_and_keeps_the_rest():
    state = SyncState().merged(updates_of([(5, 50), (1, 10), (3, 30)]), removed=set(), keep_emails=False)
    assert entries(state) == {1: 10, 3: 30, 5: 50}
    state = state.merged(updates_of([(3, 31), (4, 40), (3, 32)]), removed={1}, keep_emails=False)
    assert entries(state) == {3: 32, 4: 40, 5: 50}  # the last confirmation of a key wins
    assert len(state) == 3 and dict(zip(state.fingerprints, state.keys, strict=True)) == {32: 3, 40: 4, 50: 5}


def test_round_trip_with_and_without_emails():
    rng = random.Random(0)
    pairs = [(rng.getrandbits(64), rng.getrandbits(64)) for _ in range(1000)]
    for with_emails in (False, True):
        state = SyncState(emails=[] if with_emails else None).merged(
            updates_of(pairs, with_emails), removed=set(), keep_emails=with_emails
        )
        again = SyncState.from_bytes(state.to_bytes(), with_emails=with_emails, source="t")
        assert again.keys == state.keys and again.fingerprints == state.fingerprints
        assert again.emails == state.emails
        if with_emails:
            i = list(state.keys).index(pairs[0][0])
            assert state.email_at(i) == f"p{pairs[0][0]}@example.com"


def test_a_state_from_upsert_mode_loads_for_mirror_with_unknown_emails():
    state = SyncState().merged(updates_of([(1, 10)]), removed=set(), keep_emails=False)
    mirror = SyncState.from_bytes(state.to_bytes(), with_emails=True, source="t")
    assert mirror.emails == [""] and mirror.email_at(0) == ""


def test_journals_of_a_dead_run_are_applied_at_load():
    store = InMemoryBlobStore()
    SyncState().merged(updates_of([(1, 10), (2, 20)]), removed=set(), keep_emails=False).save(store, "d")
    store.write_bytes(
        "state/d/journal-run1-00000.bin", updates_of([(2, 21), (3, 30)]).journal_bytes(), content_type="x"
    )
    store.write_bytes("state/d/journal-run1-00001.bin", updates_of([(4, 40)]).journal_bytes(), content_type="x")
    state = SyncState.load(store, "d", with_emails=False)
    assert entries(state) == {1: 10, 2: 21, 3: 30, 4: 40}


def test_a_corrupt_state_is_a_clear_error():
    for raw in (b"", b"XXXXXXXX" + bytes(9), b"SGSYNC02" + bytes([0]) + (5).to_bytes(8, "little")):
        with pytest.raises(SyncStateError, match=r"corrupt .*: delete state/d/state\.bin or run with --full"):
            SyncState.from_bytes(raw, with_emails=False, source="state/d/state.bin")


def _sample_state(count: int, *, with_emails: bool) -> SyncState:
    rng = random.Random(count)
    return SyncState(
        array("Q", (rng.getrandbits(64) for _ in range(count))),
        array("Q", (rng.getrandbits(64) for _ in range(count))),
        [f"p{i}@example.com" for i in range(count)] if with_emails else None,
        {rng.getrandbits(64): 1_700_000_000 + i for i in range(3)},
    )


@pytest.mark.parametrize("chunk_size", [1, 5, 8, 9, 17, 4096])
def test_a_state_loads_from_chunks_cut_anywhere(chunk_size):
    for with_emails in (False, True):
        state = _sample_state(300, with_emails=with_emails)
        store = InMemoryBlobStore(chunk_size=chunk_size)
        state.save(store, "d")
        loaded = SyncState.load(store, "d", with_emails=with_emails)
        assert (loaded.keys, loaded.fingerprints, loaded.emails, loaded.pending) == (
            state.keys,
            state.fingerprints,
            state.emails,
            state.pending,
        )


def test_a_damaged_count_allocates_only_what_the_blob_holds():
    # A header claiming 2**61 contacts over 80 bytes: the columns grow with what is read.
    raw = struct.pack("<8sBQ", b"SGSYNC02", 0, 2**61) + bytes(80)
    with pytest.raises(SyncStateError, match=r"state/d/state\.bin: it is truncated"):
        SyncState.from_bytes(raw, with_emails=False, source="state/d/state.bin")


def test_a_large_state_is_streamed_from_its_columns(monkeypatch):
    from shared.run.delta import sync_state

    class Recording(InMemoryBlobStore):
        streamed: list[str] = []

        def write_stream(self, name, stream, *, content_type):
            self.streamed.append(name)
            super().write_stream(name, stream, content_type=content_type)

    store = Recording(chunk_size=4096)
    small = _sample_state(10, with_emails=False)
    small.save(store, "small")
    monkeypatch.setattr(sync_state, "_SAVED_WHOLE_BYTES", 1000)
    state = _sample_state(1000, with_emails=True)
    state.save(store, "d")
    assert store.streamed == ["state/d/state.bin"]
    assert store.blobs["state/d/state.bin"] == state.to_bytes()
    state.keys.append(1)  # the views the save took are gone: the columns can grow again
    assert SyncState.load(store, "small", with_emails=False).keys == small.keys


def test_entries_stay_compact():
    rng = random.Random(1)
    updates = StateUpdates()
    for _ in range(200_000):
        updates.add(rng.getrandbits(64), rng.getrandbits(64), None)
    state = SyncState().merged(updates, removed=set(), keep_emails=False)
    assert len(state.to_bytes()) == 17 + 16 * 200_000


@pytest.mark.parametrize("with_emails", [False, True])
def test_a_journal_round_trips_from_any_start(with_emails):
    updates = updates_of([(1, 10), (2, 20), (3, 30)], with_emails)
    again = StateUpdates()
    again.extend_from_journal(updates.journal_bytes(1))
    assert list(again.keys) == [2, 3] and list(again.fingerprints) == [20, 30]
    assert again.emails == (["p2@example.com", "p3@example.com"] if with_emails else None)


def test_a_journal_of_the_earlier_format_is_still_applied():
    legacy = b"".join(
        struct.pack("<QQH", key, fp, len(email)) + email for key, fp, email in [(7, 70, b"a@x.io"), (8, 80, b"")]
    )
    updates = StateUpdates()
    updates.extend_from_journal(legacy)
    assert list(updates.keys) == [7, 8] and list(updates.fingerprints) == [70, 80]
    assert updates.emails == ["a@x.io", ""]


def test_a_truncated_journal_is_a_clear_error():
    with pytest.raises(SyncStateError, match="journal is truncated"):
        StateUpdates().extend_from_journal(updates_of([(1, 10), (2, 20)]).journal_bytes()[:-3])


@given(
    st.lists(st.tuples(st.integers(0, 30), st.integers(0, 2**64 - 1)), max_size=40),
    st.lists(st.tuples(st.integers(0, 30), st.integers(0, 2**64 - 1)), max_size=40),
    st.sets(st.integers(0, 30)),
    st.booleans(),
)
def test_a_merge_keeps_the_last_confirmation_of_each_key_less_the_removed(old, new, removed, with_emails):
    base = SyncState(emails=[] if with_emails else None).merged(
        updates_of(old, with_emails), removed=set(), keep_emails=with_emails
    )
    merged = base.merged(updates_of(new, with_emails), removed=removed, keep_emails=with_emails)
    expected = {key: fp for key, fp in old + new if key not in removed}
    assert entries(merged) == expected and len(merged) == len(expected)
    if with_emails:
        assert merged.emails == [f"p{key}@example.com" for key in merged.keys]


def test_pending_removals_round_trip_and_end_when_confirmed_or_removed():
    keys = [email_key(f"p{i}@example.com") for i in range(4)]
    state = SyncState(
        keys=array("Q", keys),
        fingerprints=array("Q", [1, 2, 3, 4]),
        emails=[f"p{i}@example.com" for i in range(4)],
        pending={keys[1]: 1_700_000_000, keys[2]: 1_700_000_100},
    )
    loaded = SyncState.from_bytes(state.to_bytes(), with_emails=True, source="state.bin")
    assert loaded.pending == state.pending and list(loaded.emails or []) == state.emails
    assert SyncState.from_bytes(state.to_bytes(), with_emails=False, source="state.bin").keys == state.keys
    updates = StateUpdates()
    updates.add(keys[1], 9, "p1@example.com")  # came back and was confirmed: no longer owed a removal
    merged = state.merged(updates, removed={keys[2]}, keep_emails=True)
    assert merged.pending == {}
    kept = state.merged(StateUpdates(), removed=set(), keep_emails=True)
    assert kept.pending == state.pending  # None keeps the old map
    header, entries, count = 17, 4 * 16, 8
    cut = state.to_bytes()[: header + entries + count + 10]  # inside the pending section
    with pytest.raises(SyncStateError, match="truncated"):
        SyncState.from_bytes(cut, with_emails=True, source="state.bin")


def _mirror_state(emails_part: bytes, count: int = 1) -> bytes:
    return struct.pack("<8sBQ", b"SGSYNC02", 1, count) + bytes(16 * count) + emails_part


@pytest.mark.parametrize(
    "raw",
    [
        _mirror_state(b"not gzip at all"),  # BadGzipFile
        _mirror_state(gzip.compress(b"a@example.com")[:-12]),  # EOFError: the stream stops short
        _mirror_state(gzip.compress(b"\xff\xfe@example.com")),  # UnicodeDecodeError
        _mirror_state(gzip.compress(b"a@example.com\nb@example.com")),  # two emails for one contact
    ],
)
def test_a_corrupt_mirror_state_names_the_blob_and_the_way_out(raw):
    with pytest.raises(SyncStateError, match=r"^the sync state is corrupt \(state/d/state\.bin: .*\): delete state/d/"):
        SyncState.from_bytes(raw, with_emails=True, source="state/d/state.bin")


@pytest.mark.parametrize(
    "raw",
    [
        updates_of([(1, 10)], with_emails=True).journal_bytes()[:-13] + b"\xff\xfe",  # emails not UTF-8
        updates_of([(1, 10), (2, 20)], with_emails=True).journal_bytes() + b"\nextra",  # more emails than contacts
        struct.pack("<QQH", 7, 70, 5) + b"\xff\xfe\xfd\xfc\xfb",  # legacy: not UTF-8
        struct.pack("<QQH", 7, 70, 40) + b"short",  # legacy: cut inside an email
        struct.pack("<QQH", 7, 70, 0) + b"tail",  # legacy: cut inside a record
    ],
)
def test_a_corrupt_journal_names_the_blob_and_adds_nothing(raw):
    updates = StateUpdates()
    with pytest.raises(SyncStateError, match=r"corrupt \(state/d/journal-r-00001\.bin: .*\): delete state/d/journal-r"):
        updates.extend_from_journal(raw, source="state/d/journal-r-00001.bin")
    assert len(updates) == 0


def test_a_full_run_starts_afresh_from_a_corrupt_state_and_journal():
    store = InMemoryBlobStore()
    store.write_bytes("state/d/state.bin", _mirror_state(b"not gzip"), content_type="x")
    store.write_bytes("state/d/journal-r-00001.bin", b"SGJRNL02" + bytes(3), content_type="x")
    store.write_bytes("state/d/journal-r-00002.bin", updates_of([(4, 40)], True).journal_bytes(), content_type="x")
    with pytest.raises(SyncStateError, match=r"delete state/d/state\.bin or run with --full"):
        SyncState.load(store, "d", with_emails=True)
    state = SyncState.load(store, "d", with_emails=True, discard_corrupt=True)
    assert entries(state) == {4: 40} and state.emails == ["p4@example.com"]


@given(
    st.lists(st.tuples(st.integers(0, 30), st.integers(0, 2**64 - 1)), max_size=40),
    st.lists(st.tuples(st.integers(0, 30), st.integers(0, 2**64 - 1)), max_size=40),
    st.sets(st.integers(0, 30)),
    st.booleans(),
    st.data(),
)
def test_a_merge_in_place_makes_the_same_state_as_one_into_new_columns(old, new, removed, with_emails, data):
    def build():
        return SyncState(emails=[] if with_emails else None).merged(
            updates_of(old, with_emails), removed=set(), keep_emails=with_emails
        )

    # The jobs of a run end in any order: groups of updates, each with its place in the input.
    groups = [new[i : i + 3] for i in range(0, len(new), 3)]
    order = data.draw(st.permutations(range(len(groups))))

    def confirmed():
        updates = StateUpdates()
        for index in order:
            keys = array("Q", [k for k, _ in groups[index]])
            fps = array("Q", [f for _, f in groups[index]])
            emails = [f"p{k}@example.com" for k, _ in groups[index]] if with_emails else None
            updates.extend(keys, fps, emails, order=(index, 0))
        return updates

    into_new = build().merged(confirmed(), removed=removed, keep_emails=with_emails)
    in_place = build().merged(confirmed(), removed=removed, keep_emails=with_emails, in_place=True)
    assert (list(in_place.keys), list(in_place.fingerprints)) == (list(into_new.keys), list(into_new.fingerprints))
    assert in_place.emails == into_new.emails
    # Of a key confirmed twice (journals of runs that died), the last confirmation wins.
    arrival = [pair for index in order for pair in groups[index]]
    assert entries(in_place) == {key: fp for key, fp in old + arrival if key not in removed}
    if not old and len({k for k, _ in new}) == len(new):
        # A first run: the state is in the order of the input, whatever order the jobs ended in.
        assert list(in_place.keys) == [k for k, _ in new if k not in removed]


@given(
    st.lists(st.tuples(st.integers(0, 30), st.integers(0, 2**64 - 1)), max_size=40),
    st.lists(st.tuples(st.integers(0, 30), st.integers(0, 2**64 - 1)), max_size=40, unique_by=lambda p: p[0]),
    st.sets(st.integers(0, 30)),
    st.sets(st.integers(0, 30)),
    st.booleans(),
)
def test_a_runs_own_updates_merge_as_checked_ones_do(old, new, removed, waiting, with_emails):
    # A run vouches that no key comes twice in its updates; the merge then skips the index that
    # checks it, and must make the very state the checked merge makes.
    def merge(one_per_key: bool) -> SyncState:
        base = SyncState(emails=[] if with_emails else None).merged(
            updates_of(old, with_emails), removed=set(), keep_emails=with_emails
        )
        base.pending = dict.fromkeys(waiting, 1_700_000_000)
        updates = StateUpdates(one_per_key=one_per_key)
        for index in range(0, len(new), 3):
            group = new[index : index + 3]
            emails = [f"p{k}@example.com" for k, _ in group] if with_emails else None
            updates.extend(array("Q", [k for k, _ in group]), array("Q", [f for _, f in group]), emails, (index, 0))
        assert updates.one_per_key == one_per_key
        return base.merged(updates, removed=removed, keep_emails=with_emails, in_place=True)

    vouched, checked = merge(True), merge(False)
    assert (vouched.keys, vouched.fingerprints, vouched.emails) == (checked.keys, checked.fingerprints, checked.emails)
    assert vouched.pending == checked.pending
    if with_emails:
        assert vouched.pending == {k: 1_700_000_000 for k in waiting if k not in removed and k not in dict(new)}


def test_updates_added_twice_for_one_part_are_no_longer_one_per_key():
    updates = StateUpdates(one_per_key=True)
    updates.extend(array("Q", [1]), array("Q", [10]), None, order=(0, 0))
    updates.extend(array("Q", [2]), array("Q", [20]), None, order=(1, 0))
    assert updates.one_per_key
    updates.extend(array("Q", [1]), array("Q", [11]), None, order=(0, 0))
    assert not updates.one_per_key
    state = SyncState().merged(updates, removed=set(), keep_emails=False)
    assert entries(state) == {1: 11, 2: 20} and len(state) == 2


@pytest.mark.parametrize("with_emails", [False, True])
def test_a_first_runs_state_is_in_input_order_whatever_order_its_jobs_ended_in(with_emails):
    updates = StateUpdates(one_per_key=True)
    for batch in (2, 0, 1):  # the order the jobs ended in
        keys = array("Q", [10 * batch + 1, 10 * batch + 2])
        emails = [f"p{k}@example.com" for k in keys] if with_emails else None
        updates.extend(keys, array("Q", [k + 100 for k in keys]), emails, order=(batch, 0))
    empty = SyncState(emails=[] if with_emails else None)
    state = empty.merged(updates, removed=set(), keep_emails=with_emails, in_place=True)
    assert list(state.keys) == [1, 2, 11, 12, 21, 22]
    assert list(state.fingerprints) == [101, 102, 111, 112, 121, 122]
    if with_emails:
        assert state.emails == [f"p{k}@example.com" for k in (1, 2, 11, 12, 21, 22)]


def test_emails_that_inflate_past_what_the_count_allows_are_refused_cheaply():
    import tracemalloc

    bomb = gzip.compress(b"a" * (48 * 1024 * 1024), compresslevel=9)  # about 48 KB
    raw = struct.pack("<8sBQ", b"SGSYNC02", 1, 1) + bytes(16) + bomb
    tracemalloc.start()
    try:
        too_much = r"state/d/state\.bin: its emails inflate past the 1,017 bytes its 1 contact\(s\) can hold"
        with pytest.raises(SyncStateError, match=too_much):
            SyncState.from_bytes(raw, with_emails=True, source="state/d/state.bin")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


def test_a_failed_streamed_save_leaves_the_columns_free_to_change(monkeypatch):
    from shared.run.delta import sync_state

    class Failing(InMemoryBlobStore):
        def write_stream(self, name, stream, *, content_type):
            stream.read(100)  # part of the state went, then the connection broke
            raise OSError("connection reset")

    monkeypatch.setattr(sync_state, "_SAVED_WHOLE_BYTES", 64)
    state = _sample_state(100, with_emails=False)
    store = Failing()
    try:
        state.save(store, "d")
    except OSError as exc:
        failure = exc
    assert "state/d/state.bin" not in store.blobs
    state.keys.append(1)  # no view of the columns outlives the save, even with its traceback kept
    state.fingerprints.append(2)
    assert isinstance(failure, OSError) and len(state) == 101
