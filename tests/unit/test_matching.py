"""Unchanged rows found in place: the in-order fast path, shifts, and the fallbacks that keep a
delta exact whatever the order of the input."""

from __future__ import annotations

import dataclasses
import random
from array import array

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.inputs import record_split
from shared.run.delta.identity import email_key
from shared.run.delta.journal import StateUpdates
from shared.run.delta.keysets import MISSING
from shared.run.delta.matching import InPlace, KnownRows
from shared.run.delta.sync_state import SyncState
from shared.run.send.batching import BatchSpool
from tests.unit.test_export_core import LIST_ID, run, setup


def state_of(count: int) -> array[int]:
    return array("Q", range(1000, 1000 + count))


def chunks(fps: list[int], size: int) -> list[list[int]]:
    return [fps[start : start + size] for start in range(0, len(fps), size)]


def test_rows_in_the_state_order_are_found_in_place_without_an_index():
    known = KnownRows(state_of(1000))
    for index, chunk in enumerate(chunks(list(range(1000, 2000)), 100)):
        at, hints = known.match(chunk)
        assert at == range(100 * index, 100 * index + 100) and hints == {}
    assert not known.indexed


def test_a_row_changed_in_place_is_left_with_a_hint_where_its_email_was():
    known = KnownRows(state_of(300))
    rows = list(range(1000, 1300))
    rows[150] = 7  # a fingerprint the state does not hold
    at, hints = known.match(rows[:200])
    assert at[150] == MISSING and hints == {150: 150}
    assert [p for i, p in enumerate(at) if i != 150] == [p for p in range(200) if p != 150]
    assert known.match(rows[200:]) == (range(200, 300), {})  # the next chunk is in place
    assert not known.indexed


@pytest.mark.parametrize("where", [0, 37, 99])
def test_a_row_added_or_gone_shifts_the_rest_and_a_window_lines_it_up_again(where):
    state = state_of(400)
    added = list(range(1000, 1400))
    added.insert(where, 5)  # a new contact
    gone = [fp for fp in range(1000, 1400) if fp != 1000 + where]  # a contact left the segment
    for rows in (added, gone):
        known = KnownRows(state)
        found = [p for chunk in chunks(rows, 100) for p in known.match(chunk)[0]]
        assert [state[p] if p != MISSING else None for p in found] == [fp if fp >= 1000 else None for fp in rows]
        assert not known.indexed


def test_rows_in_another_order_are_found_through_the_index():
    state = state_of(2000)
    rows = list(state)
    random.Random(1).shuffle(rows)
    known = KnownRows(state)
    found = [p for chunk in chunks(rows, 500) for p in known.match(chunk)[0]]
    assert [state[p] for p in found] == rows
    assert known.indexed


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 60), max_size=80, unique=True),
    st.lists(st.integers(0, 90), max_size=120),
    st.integers(1, 40),
)
def test_a_row_found_is_always_the_very_row_and_found_rows_are_never_missed_in_order(state_rows, rows, size):
    state = array("Q", state_rows)
    known = KnownRows(state)
    for chunk in chunks(rows, size):
        at, hints = known.match(chunk)
        for row, position in enumerate(at):
            if position != MISSING:
                assert state[position] == chunk[row]
            elif known.indexed:
                assert chunk[row] not in state_rows
            if row in hints:
                assert at[row] == MISSING and 0 <= hints[row] < len(state)


def test_a_chunk_with_a_few_rows_changed_in_place_is_matched_in_one_pass():
    known = KnownRows(state_of(100))
    rows = list(range(1000, 1100))
    for changed in (0, 10, 12, 98):
        rows[changed] = changed  # not in the state
    at, hints = known.match(rows)
    assert isinstance(at, InPlace) and (at.start, at.holes) == (0, [0, 10, 12, 98])
    assert list(at) == [MISSING if p in (0, 10, 12, 98) else p for p in range(100)]
    assert hints == {0: 0, 10: 10, 12: 12, 98: 98}
    # Changed side by side, or the last row: in place too, where none is in the state nearby.
    rows = list(range(1000, 1100))
    rows[40:42], rows[99] = [1, 2], 3
    at, hints = KnownRows(state_of(100)).match(rows)
    assert isinstance(at, InPlace) and at.holes == [40, 41, 99] and hints == {40: 40, 41: 41, 99: 99}
    # A row added and one gone, side by side; the last row moved up: maybe a shift, the walk looks.
    for rows in (
        [*range(1000, 1040), 7, *range(1040, 1041), *range(1042, 1100)],
        [*range(1000, 1098), 1099, 1098],
    ):
        at, _ = KnownRows(state_of(100)).match(rows)
        assert not isinstance(at, InPlace)
    # A hundred rows side by side changed: past what the walk steps over, so the walk decides.
    rows = list(range(1000, 3000))
    rows[500:600] = range(100)
    fast, walk = KnownRows(state_of(2000)), KnownRows(state_of(2000))
    walk._in_place = lambda wanted, state, start: None  # type: ignore[method-assign]
    assert fast.match(rows) == walk.match(rows)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 80),
    st.lists(st.tuples(st.sampled_from(["change", "insert", "delete", "move"]), st.integers(0, 10**6)), max_size=10),
    st.integers(1, 40),
)
def test_the_one_pass_match_finds_what_the_walk_finds(count, edits, size):
    rows = list(range(1000, 1000 + count))
    for kind, where in edits:
        at = where % (len(rows) + 1)
        if kind == "insert":
            rows.insert(at, where)
        elif at < len(rows):
            if kind == "change":
                rows[at] = where
            elif kind == "move":
                rows.insert((at + where % 5 + 1) % (len(rows) + 1), rows.pop(at))
            else:
                del rows[at]
    fast, walk = KnownRows(state_of(count)), KnownRows(state_of(count))
    walk._in_place = lambda wanted, state, start: None  # type: ignore[method-assign]
    for chunk in chunks(rows, size):
        (fast_at, fast_hints), (walk_at, walk_hints) = fast.match(chunk), walk.match(chunk)
        assert (list(fast_at), fast_hints) == (list(walk_at), walk_hints)
        assert fast._cursor == walk._cursor and fast.indexed == walk.indexed


def test_the_merge_keeps_the_order_of_the_input_whatever_order_the_jobs_end_in():
    updates = StateUpdates()
    # Batches 2, 0, 1 end in that order.
    updates.extend(array("Q", [5, 6]), array("Q", [50, 60]), None, order=(2, 0))
    updates.extend(array("Q", [1, 2]), array("Q", [10, 20]), None, order=(0, 0))
    updates.extend(array("Q", [3, 4]), array("Q", [30, 40]), None, order=(1, 0))
    first = SyncState().merged(updates, removed=set(), keep_emails=False)
    assert list(first.keys) == [1, 2, 3, 4, 5, 6]
    again = StateUpdates()
    again.extend(array("Q", [9, 4, 2]), array("Q", [90, 41, 21]), None, order=(0, 0))
    second = first.merged(again, removed={5}, keep_emails=False)
    # Confirmed again: replaced where it stands; removed: gone; new: after the rest.
    assert list(zip(second.keys, second.fingerprints, strict=True)) == [
        (1, 10),
        (2, 21),
        (3, 30),
        (4, 41),
        (6, 60),
        (9, 90),
    ]


@pytest.mark.parametrize("moved", [False, True])
@pytest.mark.parametrize("twice", [False, True])
def test_control_characters_are_counted_the_same_whether_an_unchanged_row_moved_or_not(moved, twice):
    # An unchanged row is not parsed, so its control characters are not counted as stripped;
    # one found by its email because it moved is parsed, and must not be counted either.
    rows = [f"p{i}@example.com,Ann" for i in range(40)]
    rows[5] = "p5@example.com,An\x01n"
    runtime, fake = setup(csv_text="Email,FirstName\n" + "\n".join(rows) + "\n")
    assert run(runtime).counts.control_chars_stripped == 1
    again = rows[:5] + rows[6:] + [rows[5]] if moved else list(rows)
    if twice:
        again.append(rows[5])
    runtime.edges.segments.blobs["people.csv"] = ("Email,FirstName\n" + "\n".join(again) + "\n").encode()
    fake.bodies.clear()
    counts = run(runtime).counts
    assert (counts.sent, counts.unchanged, counts.duplicate) == (0, 40, int(twice))
    assert counts.control_chars_stripped == 0 and counts.conserved()


# Each edit: (kind, where, what); applied in turn to the rows of the first run.
kinds = st.sampled_from(["change", "insert", "delete", "move", "copy", "invalid", "large"])
edits = st.lists(st.tuples(kinds, st.integers(0, 10**6), st.integers(0, 3)), max_size=12)
# A first name (within SendGrid's 50 characters) that makes a contact too large for a batch of
# the run below, which holds 70 bytes of contacts: such a row is rejected, and takes its email
# from no other row.
TOO_LARGE = "X" * 49


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(count=st.integers(1, 120), edits=edits, shuffle=st.booleans())
def test_a_delta_is_exact_whatever_was_added_removed_changed_or_moved(count, edits, shuffle, monkeypatch_chunk):
    rows = [(f"p{i}@example.com", "Ann") for i in range(count)]
    runtime, fake = setup(csv_text=csv_of(rows))
    cap = BatchSpool([LIST_ID]).empty_body_bytes + 70
    runtime = dataclasses.replace(runtime, tuning=dataclasses.replace(runtime.tuning, max_batch_bytes=cap))
    assert run(runtime).counts.sent == count
    # What SendGrid has for each email: the row the first run sent.
    has = dict(rows)
    new_rows = list(rows)
    rng = random.Random(len(edits))
    for kind, where, what in edits:
        at = where % (len(new_rows) + 1)
        if kind == "insert":
            new_rows.insert(at, (f"new{where}@example.com", f"V{what}"))
        elif kind == "invalid":
            new_rows.insert(at, (f"not-an-email-{where}", "V"))
        elif new_rows and at < len(new_rows):
            if kind == "change":
                new_rows[at] = (new_rows[at][0], f"V{what}")
            elif kind == "large":
                new_rows.insert(at, (new_rows[at][0], TOO_LARGE))
            elif kind == "delete":
                del new_rows[at]
            elif kind == "move":
                new_rows.insert(rng.randrange(len(new_rows)), new_rows.pop(at))
            else:  # the same email again, the same row or another
                new_rows.insert(rng.randrange(len(new_rows) + 1), new_rows[at] if what < 2 else (new_rows[at][0], "W"))
    if shuffle:
        rng.shuffle(new_rows)
    runtime.edges.segments.blobs["people.csv"] = csv_of(new_rows).encode()
    fake.bodies.clear()
    record = run(runtime)
    # The reference: the first row of an email wins, and later ones are duplicates; a row with no
    # valid email, or the first of its email but too large, is rejected and claims nothing. The
    # winner is unchanged if SendGrid has that very row.
    seen: dict[str, None] = {}
    sent, unchanged, duplicate, invalid = [], 0, 0, 0
    for email, name in new_rows:
        if "@" not in email:
            invalid += 1
        elif email in seen:
            duplicate += 1
        elif name == TOO_LARGE:
            invalid += 1
        else:
            seen[email] = None
            if has.get(email) == name:
                unchanged += 1
            else:
                sent.append((email, name))
    got = [(c["email"], c["first_name"]) for body in fake.bodies for c in body["contacts"]]
    assert sorted(got) == sorted(sent)
    assert (record.counts.unchanged, record.counts.duplicate, record.counts.invalid) == (unchanged, duplicate, invalid)
    # The state follows the order of this input, for the next run to find its rows in place.
    state = SyncState.load(runtime.edges.exports, "newsletter", with_emails=False)
    order = [email_key(email) for email in seen]
    assert [key for key in state.keys if key in set(order)] == order
    assert sorted(state.keys) == sorted({email_key(email) for email in [e for e, _ in rows] + list(seen)})
    # Run again on the same input: nothing left to send.
    fake.bodies.clear()
    again = run(runtime)
    assert again.counts.sent == 0 and again.counts.unchanged == len(seen) and again.counts.invalid == invalid


def csv_of(rows: list[tuple[str, str]]) -> str:
    return "Email,FirstName\n" + "".join(f"{email},{name}\n" for email, name in rows)


@pytest.fixture
def monkeypatch_chunk(monkeypatch):
    # Chunks of a few rows, so that shifts fall inside and across chunks.
    monkeypatch.setattr(record_split, "_TEXT_CHUNK_CHARS", 97)


@pytest.mark.parametrize("noted_twice", [False, True])
def test_a_state_out_of_step_is_written_in_the_run_order(noted_twice):
    from shared.run.delta.run_order import RunOrder

    state = SyncState(array("Q", [1, 2, 3, 4, 5]), array("Q", [10, 20, 30, 40, 50]), [f"e{k}" for k in range(1, 6)])
    order = RunOrder()
    # Rows: entry 3 (key 4), a new contact (key 9), entry 0 (key 1), entry 2 (key 3, changed);
    # key 2 is not in this input; key 5 leaves the list (mirror removal).
    chunk = [3, order.new_contact(9), 0, 2] + ([3] if noted_twice else [])
    order.note(chunk)
    updates = StateUpdates()
    updates.extend(array("Q", [9, 3]), array("Q", [90, 31]), ["e9", "e3'"], order=(0, 0))
    merged = state.merged(updates, removed={5}, keep_emails=True, in_place=True, order=order)
    assert list(zip(merged.keys, merged.fingerprints, merged.emails or [], strict=True)) == [
        (4, 40, "e4"),
        (9, 90, "e9"),
        (1, 10, "e1"),
        (3, 31, "e3'"),
        (2, 20, "e2"),  # not in this input: after the rest, in the state's order
    ]


def test_the_run_order_knows_when_the_state_already_follows_it():
    from shared.run.delta.run_order import RunOrder

    def order_of(*chunks):
        order = RunOrder()
        for chunk in chunks:
            entries = chunk if isinstance(chunk, range) else [order.new_contact(7) if e == "new" else e for e in chunk]
            order.note(entries)
        return order.follows_the_state()

    assert order_of(range(0, 5), [5, MISSING, 7, 9], range(10, 12), [12, "new", "new"])  # gaps: rows gone
    assert not order_of(range(0, 5), ["new", 5], range(6, 8))  # a new contact in the middle
    assert not order_of(range(0, 5), [6, 5])  # two rows swapped
    assert not order_of(range(5, 8), range(0, 3))  # a later file first
    assert not order_of([2, 2])  # one entry twice


def test_a_state_fingerprinted_another_way_sends_everyone_once_then_nothing(monkeypatch):
    # An upgrade that changes the fingerprint (the rules' version, or its hash): no row of the
    # old state can match, so every contact goes once more, found by its email, and the state
    # then holds the new fingerprints in the input's order.
    rows = [(f"p{i}@example.com", "Ann") for i in range(300)]
    runtime, fake = setup(csv_text=csv_of(rows))
    assert run(runtime).counts.sent == 300
    monkeypatch.setattr("shared.run.delta.identity.RULES_VERSION", b"rules-next")
    fake.bodies.clear()
    counts = run(runtime).counts
    assert (counts.sent, counts.unchanged, counts.duplicate) == (300, 0, 0)
    state = SyncState.load(runtime.edges.exports, "newsletter", with_emails=False)
    assert list(state.keys) == [email_key(email) for email, _ in rows]
    fake.bodies.clear()
    again = run(runtime).counts
    assert (again.sent, again.unchanged) == (0, 300) and fake.bodies == []


def test_a_row_too_large_does_not_keep_the_next_row_of_its_email_from_taking_over():
    # p5's rows: one too large for a batch (rejected), one changed, then the one SendGrid has, in
    # place. The first row that can be sent is the changed one: it goes, and the unchanged one is
    # the duplicate.
    rows = [(f"p{i}@example.com", "Ann") for i in range(60)]
    runtime, fake = setup(csv_text=csv_of(rows))
    runtime = dataclasses.replace(runtime, tuning=dataclasses.replace(runtime.tuning, max_batch_bytes=120))
    assert run(runtime).counts.sent == 60
    new_rows = list(rows)
    new_rows[2] = ("p5@example.com", "X" * 49)
    new_rows[3] = ("p5@example.com", "Changed")
    runtime.edges.segments.blobs["people.csv"] = csv_of(new_rows).encode()
    fake.bodies.clear()
    counts = run(runtime).counts
    assert (counts.sent, counts.invalid, counts.duplicate, counts.unchanged) == (1, 1, 1, 57)
    assert [(c["email"], c["first_name"]) for body in fake.bodies for c in body["contacts"]] == [
        ("p5@example.com", "Changed")
    ]


def test_once_the_index_is_built_a_row_moved_from_afar_is_found_in_it():
    state = state_of(2000)
    first = list(range(1000, 1499))
    random.Random(2).shuffle(first)
    known = KnownRows(state)
    known.match([*first, 1499])  # out of order: the index is built; the cursor is at 500
    assert known.indexed
    chunk = list(range(1500, 1564))
    chunk[10] = 2800  # an unchanged row from far ahead, in a chunk otherwise in place
    at, hints = known.match(chunk)
    assert at[10] == 1800 and 10 not in hints
    assert [p for i, p in enumerate(at) if i != 10] == [p for p in range(500, 564) if p != 510]
