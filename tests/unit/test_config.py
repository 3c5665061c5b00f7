import json

import pytest

from shared.errors import ConfigError, ConsentError, UnknownDestinationError
from shared.inputs.config import parse_destinations


def doc(*destinations):
    return json.dumps({"destinations": list(destinations)})


def good(**overrides):
    base = {
        "name": "newsletter",
        "data_privacy_consent": True,
        "list": {"id": "ca7a3796-e8a8-4029-9ccb-df8937940562"},
        "segments": [{"path": "ci/Newsletter/"}],
    }
    base.update(overrides)
    return base


def test_a_full_destination_parses_with_its_defaults():
    d = parse_destinations(doc(good())).get("newsletter")
    assert d.enabled and d.schedule_enabled and d.data_privacy_consent
    assert d.region == "global" and d.mode == "upsert"
    assert d.max_profiles == 100_000 and d.max_removal_fraction == 0.2
    assert d.api_key_secret == "sendgrid-api-key"
    assert d.mapping is None
    assert d.api_base_url(None) == "https://api.sendgrid.com"
    assert d.api_base_url("http://127.0.0.1:9") == "http://127.0.0.1:9"


def test_eu_region_uses_the_eu_host():
    assert (
        parse_destinations(doc(good(region="eu"))).get("newsletter").api_base_url(None) == "https://api.eu.sendgrid.com"
    )


def test_the_product_example_parses():
    example = {
        "name": "newsletter",
        "display_name": "Newsletter subscribers",
        "enabled": True,
        "data_privacy_consent": True,
        "api_key_secret": "sendgrid-api-key",
        "region": "global",
        "list": {"name": "Newsletter", "create_if_missing": True},
        "segments": [
            {"path": "ci/CustomerInsights_1/Newsletter/", "table": "NewsletterSegment"},
            {"path": "manual/vip.csv"},
        ],
        "mapping": {
            "email": "PrimaryEmail",
            "first_name": "FirstName",
            "last_name": "LastName",
            "city": "City",
            "state_province_region": "StateOrProvince",
            "country": "Country",
            "postal_code": "PostalCode",
            "custom_fields": {"loyalty_tier": "LoyaltyTier"},
        },
        "mode": "upsert",
        "max_profiles": 100000,
        "max_removal_fraction": 0.2,
        "schedule_enabled": True,
    }
    d = parse_destinations(doc(example)).get("newsletter")
    assert d.mapping is not None and d.mapping.custom_fields == {"loyalty_tier": "LoyaltyTier"}
    assert d.segments[0].table == "NewsletterSegment" and d.segments[0].is_prefix
    assert d.lists[0].name == "Newsletter" and d.lists[0].create_if_missing


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "Bad Name"}, "name"),
        ({"region": "us"}, "region"),
        ({"mode": "replace"}, "mode"),
        ({"max_profiles": 0}, "max_profiles"),
        ({"max_profiles": True}, "max_profiles"),
        ({"max_removal_fraction": 1.5}, "max_removal_fraction"),
        ({"enabled": "yes"}, "enabled"),
        ({"data_privacy_consent": "true"}, "data_privacy_consent"),
        ({"api_key_secret": "bad/name"}, "api_key_secret"),
        ({"segments": []}, "segments"),
        ({"segments": [{"path": "../outside.csv"}]}, "segments[0].path"),
        ({"segments": [{"path": "https://other.blob.core.windows.net/x.csv"}]}, "segments[0].path"),
        ({"segments": [{"path": "a.csv", "csv": {"delimiter": "#"}}]}, "segments[0].csv.delimiter"),
        ({"segments": [{"path": "a.csv", "csv": {"header": False}}]}, "segments[0].csv.columns"),
        ({"list": {"id": "x", "name": "y"}}, "list"),
        ({"list": {"name": "y", "create_if_missing": "yes"}}, "list.create_if_missing"),
        ({"mapping": {"first_name": "FirstName"}}, "mapping.email"),
        ({"mapping": {"email": "E", "nickname": "N"}}, "mapping.nickname"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_an_invalid_destination_names_itself_and_the_field(overrides, field):
    config = parse_destinations(doc(good(**overrides)))
    label = overrides.get("name", "newsletter")
    with pytest.raises(ConfigError) as caught:
        config.get(label)
    assert caught.value.field == field
    assert f"field '{field}'" in str(caught.value)


def test_one_bad_destination_does_not_stop_the_others():
    config = parse_destinations(doc(good(), good(name="broken", region="mars")))
    assert config.get("newsletter").name == "newsletter"
    with pytest.raises(ConfigError, match="destination 'broken', field 'region'"):
        config.get("broken")
    assert config.names() == ["broken", "newsletter"]


def test_duplicate_names_are_refused():
    config = parse_destinations(doc(good(), good()))
    with pytest.raises(ConfigError, match="more than one destination"):
        config.get("newsletter")


def test_unknown_destination_lists_the_known_ones():
    with pytest.raises(UnknownDestinationError, match="configured: newsletter"):
        parse_destinations(doc(good())).get("other")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "[]",
        '{"destinations": {}}',
        '{"destinations": [], "x": 1}',
        '{"destinations": [{"name": "a", "max_profiles": 1000, "max_profiles": 10000000}]}',  # which one?
        '{"destinations": [{"name": "a", "max_profiles": NaN}]}',
    ],
)
def test_a_malformed_document_is_one_clear_error(text):
    with pytest.raises(ConfigError, match=r"destinations\.json"):
        parse_destinations(text)


def test_consent_is_enforced_with_a_reason():
    d = parse_destinations(doc(good(data_privacy_consent=False))).get("newsletter")
    with pytest.raises(ConsentError, match="data_privacy_consent"):
        d.require_consent()


def test_public_view_never_holds_a_secret_value():
    view = parse_destinations(doc(good())).get("newsletter").public_view()
    assert "api_key" not in json.dumps(view)


@pytest.mark.parametrize("depth", [10_000, 100_000])
def test_a_deeply_nested_file_is_a_clear_error_not_a_recursion_error(depth):
    nested = '{"destinations": [' + "[" * depth + "]" * depth + "]}"
    with pytest.raises(ConfigError, match=r"destinations\.json nests arrays or objects more than 64 levels deep"):
        parse_destinations(nested)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "newsletter\n"}, "name"),
        ({"api_key_secret": "sendgrid-api-key\n"}, "api_key_secret"),
        ({"list": {"id": "ca7a3796\n"}}, "list"),
    ],
)
def test_a_trailing_newline_is_not_part_of_a_valid_name(overrides, field):
    config = parse_destinations(doc(good(**overrides)))
    assert config.destinations == {}
    (error,) = config.invalid.values()
    assert f"field '{field}" in str(error)
