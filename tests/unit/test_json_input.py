"""The one way JSON from outside is read: its depth measured before it is parsed."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.json_input import MAX_JSON_DEPTH, JsonDocumentError, json_depth, load_json

keys = st.text(alphabet='[{"\\k', max_size=4)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n\u2028', max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=25,
)


def depth_of(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    return 0


@settings(max_examples=400, deadline=None)
@given(value=values, indent=st.sampled_from([None, 1]), ascii_only=st.booleans())
def test_the_scan_measures_the_depth_the_parser_would_find(value, indent, ascii_only):
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only)
    assert json_depth(text) == depth_of(value)
    assert load_json(text.encode("utf-16") if indent else text, "doc") == value


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000, 1_000_000])
def test_a_document_past_the_bound_is_one_clear_error_naming_it_whatever_its_depth(depth):
    for text in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth, "[" * depth):
        with pytest.raises(JsonDocumentError, match=f"model.json nests arrays or objects more than {MAX_JSON_DEPTH}"):
            load_json(text, "model.json")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "not valid JSON"),
        (b"\xff\xfe\xfd", "not UTF-8"),
        (b'{"n": 1' + b"0" * 5000 + b"}", "4300"),
        (b'["' + b"[" * 500 + b'"]', None),  # brackets inside a string do not count
    ],
)
def test_what_is_not_json_is_named_and_a_string_of_brackets_is_no_depth(data, why):
    if why is None:
        assert load_json(data, "x") == ["[" * 500]
        return
    with pytest.raises(JsonDocumentError, match=why):
        load_json(data, "x")


@pytest.mark.timeout(20)  # a hang guard: the scan was quadratic here (80 KB took 22 s, this would take hours)
@pytest.mark.parametrize("tail", ['"' + '\\"' * 500_000, '"' * 1_000_001, '"\\' * 500_000])
def test_the_depth_scan_is_linear_however_the_strings_are_left_open(tail):
    with pytest.raises(JsonDocumentError, match=r"not valid JSON|more than 64"):
        load_json("[" * (MAX_JSON_DEPTH + 1) + tail, "segment line")
    assert json_depth("[" * 3 + tail + "[[[[") == 3  # what follows a string that never closes is inside it


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
def test_numbers_json_has_not_are_refused_not_carried_into_a_record(number):
    # json.loads takes them, and json.dumps writes them back as no JSON at all (a record, an answer).
    with pytest.raises(JsonDocumentError, match="SendGrid's answer is not valid JSON"):
        load_json(f'{{"errored_count": {number}}}', "SendGrid's answer")
    assert load_json('{"x": 1.5e300}', "doc") == {"x": 1.5e300}


def test_a_key_written_twice_is_refused_where_it_would_be_ambiguous():
    doc = '{"destinations": [{"name": "a", "max_profiles": 1000, "max_profiles": 1000000}]}'
    assert load_json(doc, "d.json") == {"destinations": [{"name": "a", "max_profiles": 1000000}]}
    with pytest.raises(
        JsonDocumentError, match=r"d\.json is not valid JSON: an object names the key 'max_profiles' twice"
    ):
        load_json(doc, "d.json", unique_keys=True)
