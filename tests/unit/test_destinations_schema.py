"""schemas/destinations.schema.json agrees with shared/inputs/config.py (the source of truth), and the
README's example and the samples validate against it."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest

from shared.inputs import config
from shared.inputs.config import InvalidDestination, parse_destinations
from tests.conftest import REPO

SCHEMA = json.loads((REPO / "schemas" / "destinations.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
DEFS = SCHEMA["$defs"]
DESTINATION = DEFS["destination"]["properties"]


def test_the_schema_is_a_valid_draft_2020_12_schema():
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_every_key_config_accepts_is_in_the_schema_and_no_other():
    assert set(DESTINATION) == config._DESTINATION_KEYS
    assert set(SCHEMA["properties"]) == {"destinations", "$schema"}
    for branch in DEFS["listRef"]["oneOf"]:
        assert set(branch["properties"]) <= {"id", "name", "create_if_missing"}
    assert set(DEFS["segment"]["properties"]) == {"path", "table", "csv"}
    assert set(DEFS["csv"]["properties"]) == {"delimiter", "header", "columns", "encoding"}
    assert set(DEFS["mapping"]["properties"]) == {*config.RESERVED_FIELDS, "custom_fields"}
    assert DEFS["mapping"]["required"] == ["email"]
    for definition in (DEFS["destination"], DEFS["segment"], DEFS["csv"], DEFS["mapping"], SCHEMA):
        assert definition["additionalProperties"] is False  # config refuses unknown keys everywhere


def test_enums_bounds_and_patterns_agree():
    assert DESTINATION["region"]["enum"] == list(config.REGION_BASE_URLS)
    assert DESTINATION["mode"]["enum"] == list(config.MODES)
    assert DEFS["csv"]["properties"]["delimiter"]["enum"] == list(config.CSV_DELIMITERS)
    assert DEFS["csv"]["properties"]["encoding"]["enum"] == list(config.CSV_ENCODINGS)
    assert DESTINATION["max_profiles"]["minimum"] == 1
    assert (DESTINATION["max_removal_fraction"]["minimum"], DESTINATION["max_removal_fraction"]["maximum"]) == (0, 1)
    assert DESTINATION["display_name"]["maxLength"] == 200

    # JSON Schema patterns are ECMA-262, where $ is the end of input: config's \Z.
    def same(schema_pattern: str, ours: re.Pattern[str]) -> None:
        assert schema_pattern == ours.pattern.replace("\\Z", "$")

    same(DESTINATION["name"]["pattern"], config.NAME_PATTERN)
    same(DESTINATION["api_key_secret"]["pattern"], config._SECRET_NAME)
    by_id, by_name = DEFS["listRef"]["oneOf"]
    same(by_id["properties"]["id"]["pattern"], config._LIST_ID)
    assert by_name["properties"]["name"]["maxLength"] == 100


def test_the_schema_defaults_are_what_config_fills_in():
    minimal = {"name": "x", "list": {"id": "abc"}, "segments": [{"path": "a.csv"}]}
    parsed = parse_destinations(json.dumps({"destinations": [minimal]})).get("x")
    for key, spec in DESTINATION.items():
        if "default" in spec:
            assert getattr(parsed, key) == spec["default"], key


GOOD: dict[str, Any] = {"name": "newsletter", "list": {"name": "News"}, "segments": [{"path": "ci/News/"}]}

# Each entry: config and the schema must agree on it, valid or not.
CASES: list[dict[str, Any]] = [
    {},
    {"region": "eu", "mode": "mirror", "max_profiles": 5, "max_removal_fraction": 1, "on_new_data": True},
    {"region": "mars"},
    {"mode": "replace"},
    {"max_profiles": 0},
    {"max_profiles": True},
    {"max_removal_fraction": 1.5},
    {"on_new_data": "yes"},
    {"enabled": 1},
    {"surprise": 1},
    {"name": "News"},
    {"name": "a" * 64},
    {"display_name": " "},
    {"display_name": "x" * 201},
    {"api_key_secret": "bad_name"},
    {"list": {"id": "abc", "name": "both"}},
    {"list": {"id": "abc", "create_if_missing": True}},
    {"list": {"name": "x" * 101}},
    {"list": {"name": "N", "extra": 1}},
    {"lists": []},
    {"lists": [{"id": "a"}, {"name": "B", "create_if_missing": True}]},
    {"segments": []},
    {"segments": [{"path": "/abs.csv"}]},
    {"segments": [{"path": "a/../b.csv"}]},
    {"segments": [{"path": "https://x/y.csv"}]},
    {"segments": [{"path": "a\\b.csv"}]},
    {"segments": [{"path": "   "}]},
    {"segments": [{"path": "a.csv", "table": ""}]},
    {"segments": [{"path": "a.csv", "csv": {"delimiter": ":"}}]},
    {"segments": [{"path": "a.csv", "csv": {"header": False}}]},
    {"segments": [{"path": "a.csv", "csv": {"header": False, "columns": ["Email"], "encoding": "cp1252"}}]},
    {"segments": [{"path": "a.csv", "csv": {"encoding": "ascii"}}]},
    {"segments": [{"path": "a.csv", "csv": {"columns": []}}]},
    {"mapping": {"email": "E", "first_name": "F", "custom_fields": {"tier": "T"}}},
    {"mapping": {"first_name": "F"}},
    {"mapping": {"email": "E", "nickname": "N"}},
    {"mapping": {"email": " "}},
    {"mapping": {"email": "E", "custom_fields": {"tier": ""}}},
]


@pytest.mark.parametrize("overrides", CASES, ids=[json.dumps(c)[:60] for c in CASES])
def test_config_and_the_schema_agree_on_each_entry(overrides):
    entry = {**GOOD, **overrides}
    document = {"destinations": [entry]}
    config_valid = not parse_destinations(json.dumps(document)).invalid
    schema_errors = [e.message for e in VALIDATOR.iter_errors(document)]
    assert config_valid == (not schema_errors), schema_errors


def test_an_entry_without_any_list_is_invalid_in_both():
    entry = {"name": "x", "segments": [{"path": "a.csv"}]}
    assert parse_destinations(json.dumps({"destinations": [entry]})).invalid
    assert not VALIDATOR.is_valid({"destinations": [entry]})


def readme_example() -> dict[str, Any]:
    text = (REPO / "README.md").read_text()
    section = text.split("## `destinations.json`", 1)[1]
    block = section.split("```json", 1)[1].split("```", 1)[0]
    return json.loads(block)


@pytest.mark.parametrize("source", ["README.md", "samples/destinations.json"])
def test_the_readme_example_and_the_samples_validate(source):
    document = readme_example() if source == "README.md" else json.loads((REPO / source).read_text())
    assert [e.message for e in VALIDATOR.iter_errors(document)] == []
    parsed = parse_destinations(json.dumps(document))
    assert parsed.invalid == {} and parsed.destinations


def test_every_problem_of_an_entry_is_reported_at_once():
    entry = {
        **GOOD,
        "region": "mars",
        "mode": "replace",
        "max_profiles": 0,
        "surprise": 1,
        "segments": [{"path": "ok.csv"}, {"path": "/abs.csv"}],
        "mapping": {"email": "E", "nickname": "N"},
    }
    config_ = parse_destinations(json.dumps({"destinations": [entry]}))
    error = config_.invalid["newsletter"]
    assert isinstance(error, InvalidDestination)
    fields = [f for f, _ in error.problems]
    assert sorted(fields) == sorted(
        ["surprise", "region", "mode", "max_profiles", "segments[1].path", "mapping.nickname"]
    )
    message = str(error)
    assert message.startswith(f"destination 'newsletter', field '{fields[0]}': ")
    for field in fields:
        assert f"field '{field}'" in message
    assert "must be 'global' or 'eu'" in message and "must be 'upsert' or 'mirror'" in message


def test_one_problem_reads_as_before():
    error = parse_destinations(json.dumps({"destinations": [{**GOOD, "region": "mars"}]})).invalid["newsletter"]
    assert str(error) == "destination 'newsletter', field 'region': must be 'global' or 'eu'."
