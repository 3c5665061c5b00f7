import random

from shared.sync_state import StateUpdates, SyncState, email_key, fingerprint, list_salt
from tests.fakes import InMemoryBlobStore


def updates_of(pairs, with_emails=False):
    updates = StateUpdates()
    for key, fp in pairs:
        updates.add(key, fp, f"p{key}@example.com" if with_emails else None)
    return updates


def test_keys_and_fingerprints_are_stable_64_bit_values():
    assert email_key("a@example.com") == email_key("a@example.com") != email_key("b@example.com")
    assert 0 <= email_key("a@example.com") < 2**64
    salt = list_salt(["l2", "l1"])
    assert salt == list_salt(["l1", "l2"]) != list_salt(["l1"])
    assert fingerprint(b'{"email":"a"}', salt) != fingerprint(b'{"email":"a"}', list_salt(["l1"]))


def test_merge_updates_replaces_and_removes_in_key_order():
    state = SyncState().merged(updates_of([(5, 50), (1, 10), (3, 30)]), removed=set(), keep_emails=False)
    assert list(state.keys) == [1, 3, 5] and list(state.fingerprints) == [10, 30, 50]
    state = state.merged(updates_of([(3, 31), (4, 40), (3, 32)]), removed={1}, keep_emails=False)
    assert list(state.keys) == [3, 4, 5] and list(state.fingerprints) == [32, 40, 50]  # the last update wins
    assert state.fingerprint_of(4) == 40 and state.fingerprint_of(2) is None


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
    assert list(state.keys) == [1, 2, 3, 4] and list(state.fingerprints) == [10, 21, 30, 40]


def test_a_corrupt_state_is_a_clear_error():
    import pytest

    from shared.sync_state import SyncStateError

    for raw in (b"", b"XXXXXXXX" + bytes(9), b"SGSYNC01" + bytes([0]) + (5).to_bytes(8, "little")):
        with pytest.raises(SyncStateError, match="delete it to resend everything once"):
            SyncState.from_bytes(raw, with_emails=False, source="state/d/state.bin")


def test_a_million_entries_stay_compact():
    rng = random.Random(1)
    updates = StateUpdates()
    for _ in range(200_000):
        updates.add(rng.getrandbits(64), rng.getrandbits(64), None)
    state = SyncState().merged(updates, removed=set(), keep_emails=False)
    assert len(state.to_bytes()) == 17 + 16 * 200_000
