import random

import pytest

from shared.sync_state import RowFingerprinter, StateUpdates, SyncState, SyncStateError, email_key
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
    assert len(state) == 3 and state.fingerprint_keys() == {32: 3, 40: 4, 50: 5}


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
        with pytest.raises(SyncStateError, match="delete it to resend everything once"):
            SyncState.from_bytes(raw, with_emails=False, source="state/d/state.bin")


def test_entries_stay_compact():
    rng = random.Random(1)
    updates = StateUpdates()
    for _ in range(200_000):
        updates.add(rng.getrandbits(64), rng.getrandbits(64), None)
    state = SyncState().merged(updates, removed=set(), keep_emails=False)
    assert len(state.to_bytes()) == 17 + 16 * 200_000
