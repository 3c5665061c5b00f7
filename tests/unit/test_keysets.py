"""The compact key tables against plain dicts and sets."""

from array import array

from hypothesis import given
from hypothesis import strategies as st

from shared.run.delta.keysets import MISSING, KeySet, PositionIndex
from shared.run.delta.run_keys import RunKeys, departed_indexes
from shared.run.delta.sync_state import SyncState, _runs_of_ones

# Small numbers collide in the tables' slots (and 0 marks an empty slot); large ones are keys.
numbers = st.one_of(st.integers(0, 40), st.integers(0, 2**64 - 1))
# Numbers that share a key set's first slots and its last ones (its walks wrap round to the start).
colliding = st.builds(
    lambda k, r: k * KeySet._MIN_SIZE + r, st.integers(0, 30), st.sampled_from([0, 1, 2, KeySet._MIN_SIZE - 1])
)


@given(st.lists(numbers, unique=True, max_size=60), st.lists(numbers, max_size=60))
def test_a_position_index_finds_what_a_dict_does(values, probes):
    index = PositionIndex(array("Q", values), check_distinct=True)
    model = {value: position for position, value in enumerate(values)}
    assert index.distinct is True and len(index) == len(values)
    asked = probes + values
    assert [index.find(x) for x in asked] == [model.get(x, MISSING) for x in asked]
    assert index.find_many(asked) == [model.get(x, MISSING) for x in asked]


@given(st.lists(numbers, min_size=1, max_size=60))
def test_a_position_index_tells_whether_a_number_occurs_twice(values):
    index = PositionIndex(array("Q", values), check_distinct=True)
    assert index.distinct == (len(set(values)) == len(values))
    for value in values:  # one of its positions
        assert values[index.find(value)] == value
    assert PositionIndex(array("Q", values)).distinct is None  # not asked


def test_a_position_index_of_many_numbers_wraps_and_stays_small():
    values = array("Q", range(7, 7 + 100_000 * 7, 7))  # many share a slot modulo the table's size
    index = PositionIndex(values)
    assert index.find_many(list(values[::997])) == list(range(0, len(values), 997))
    assert index.find(2**64 - 1) == MISSING and index.find(8) == MISSING
    assert index.nbytes <= 10 * len(values)


@given(st.lists(st.one_of(numbers, colliding), max_size=200))
def test_a_key_set_is_a_set(sequence):
    keys, model = KeySet(), set()
    for number in sequence:
        assert (number in keys) == (number in model)
        assert keys.add(number) == (number not in model)
        model.add(number)
        assert len(keys) == len(model) and bool(keys) == bool(model)
    assert all(number in keys for number in model)
    assert "a" not in keys


@given(st.lists(st.tuples(st.booleans(), st.one_of(numbers, colliding)), max_size=200))
def test_a_key_set_takes_numbers_out_as_a_set_does(operations):
    keys, model = KeySet(), set()
    for taking_out, number in operations:
        if taking_out:
            keys.discard(number)
            model.discard(number)
        else:
            keys.add(number)
            model.add(number)
        assert len(keys) == len(model)
    for number in {number for _, number in operations}:
        assert (number in keys) == (number in model)


def test_a_key_set_grows_and_keeps_every_number():
    keys = KeySet(range(0, 3 * 50_000, 3))
    assert len(keys) == 50_000 and keys.nbytes <= 27 * 50_000
    assert all(n in keys for n in range(0, 3 * 50_000, 3))
    assert not any(n in keys for n in range(1, 3 * 50_000, 3))


@given(
    st.lists(numbers, unique=True, max_size=30),
    st.lists(st.tuples(st.booleans(), numbers, st.integers(0, 29)), max_size=60),
    st.booleans(),
)
def test_run_keys_are_a_set_of_keys(state_keys, operations, with_state):
    state = SyncState(array("Q", state_keys), array("Q", range(len(state_keys))))
    run = RunKeys(state if with_state else None)
    model: set[int] = set()
    for by_position, number, position in operations:
        if by_position and with_state and position < len(state_keys):
            key = state_keys[position]
            if key not in model:  # the caller checks that none is claimed yet
                run.claim_unclaimed({position})
        else:
            key = number
            run.add(key)
        model.add(key)
        assert len(run) == len(model) and bool(run) == bool(model)
    for key in state_keys + [number for _, number, _ in operations]:
        assert (key in run) == (key in model)
    assert list(departed_indexes(state, run)) == list(departed_indexes(state, model))
    if with_state:
        assert list(run.unclaimed()) == [i for i, key in enumerate(state_keys) if key not in model]


@given(st.lists(st.sampled_from([0, 1]), max_size=40))
def test_the_runs_kept_at_a_merge_are_the_runs_of_ones(flags):
    runs = list(_runs_of_ones(bytearray(flags)))
    assert [i for start, stop in runs for i in range(start, stop)] == [i for i, f in enumerate(flags) if f]
    assert all(stop < len(flags) and not flags[stop] for _, stop in runs[:-1])  # maximal runs


def test_a_key_set_with_room_reserved_does_not_grow_and_keeps_what_it_held():
    keys = KeySet(range(1, 1001))
    keys.reserve(30_000)
    reserved = keys.nbytes
    assert reserved == 8 * (5 * 30_000 // 3 + 1)
    for number in range(1001, 30_001):
        keys.add(number)
    assert keys.nbytes == reserved and len(keys) == 30_000
    assert all(number in keys for number in range(1, 30_001)) and 30_001 not in keys
    keys.reserve(10)  # less than it has: nothing changes
    assert keys.nbytes == reserved


def test_run_keys_reserve_for_the_keys_the_rows_so_far_promise():
    without_state = RunKeys()
    for key in range(1, 5001):
        without_state.add(key)
    without_state.expect(1_000_000, 10_000)  # half the rows so far made a key
    assert without_state.others.nbytes == 8 * (5 * 525_000 // 3 + 1)
    before = without_state.others.nbytes
    blank = RunKeys()
    blank.expect(1_000_000, 10_000)  # rows that made no key (blank, invalid) reserve nothing
    assert blank.others.nbytes == KeySet().nbytes
    with_state = RunKeys(SyncState(array("Q", [7, 8]), array("Q", [1, 2])))
    with_state.expect(1_000_000, 10_000)  # the state's keys are claimed by position, not in the set
    assert with_state.others.nbytes == KeySet().nbytes and before == without_state.others.nbytes
