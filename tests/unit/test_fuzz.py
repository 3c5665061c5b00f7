"""Fuzzed configuration and HTTP input: a clear error or a counted rejection, never a traceback."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.config import _DESTINATION_KEYS, parse_destinations
from shared.errors import ConfigError
from shared.http_api import ApiRequest, check_destination, get_export, handle, list_exports, start_export
from tests.unit.test_export_core import setup

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
fields = st.sampled_from(sorted(_DESTINATION_KEYS | {"an_unknown_key"}))
GOOD = {"name": "newsletter", "data_privacy_consent": True, "list": {"name": "L"}, "segments": [{"path": "a.csv"}]}


@settings(max_examples=300, deadline=None)
@given(doc=json_values)
def test_any_json_document_parses_or_is_one_clear_error(doc):
    try:
        config = parse_destinations(json.dumps(doc))
    except ConfigError as exc:
        assert "destinations.json" in str(exc)
        return
    for name in config.names():
        try:
            config.get(name)
        except ConfigError as exc:
            assert exc.destination is not None and str(exc).startswith(f"destination '{exc.destination}'")


@settings(max_examples=400, deadline=None)
@given(changes=st.dictionaries(fields, json_values, min_size=1, max_size=4))
def test_any_bad_field_names_the_destination_and_the_field(changes):
    entry = {**GOOD, **changes}
    config = parse_destinations(json.dumps({"destinations": [entry]}))
    (name,) = config.names()
    try:
        config.get(name)
    except ConfigError as exc:
        assert exc.destination == name and exc.field is not None
        assert f"destination '{name}', field '{exc.field}'" in str(exc) or exc.field == ""


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.text(max_size=70),
    body=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()),
    run_id=st.text(max_size=40),
    limit=st.text(max_size=6),
)
def test_any_http_input_gets_json_and_a_4xx_or_success(name, body, run_id, limit):
    edges, fake = setup()
    for handler, route, query in (
        (start_export, {"name": name}, {}),
        (list_exports, {"name": name}, {"limit": limit}),
        (get_export, {"name": name, "run_id": run_id}, {}),
        (check_destination, {"name": name}, {}),
    ):
        request = ApiRequest("POST", "https://h/api/x", route=route, query=query, body=body)
        response = handle(handler, lambda: edges, request)
        json.loads(response.json_bytes())
        assert response.status in (200, 202, 400, 404, 409), (handler.__name__, response.body)
        if response.status >= 400:
            assert set(response.body) == {"error"} and response.body["error"]["code"]
    assert fake.bodies == []  # nothing is ever sent inside an HTTP request
