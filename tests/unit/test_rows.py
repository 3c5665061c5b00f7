import time
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import SegmentError
from shared.inputs.config import FieldMapping
from shared.inputs.mapping import plan_columns
from shared.inputs.rows import CustomFieldDef, RowRules, coerce_custom_value

COLUMNS = ["Id", "PrimaryEmail", "FirstName", "LastName", "City", "StateOrProvince", "Country", "PostalCode"]


def rules(columns=COLUMNS, mapping=None, custom=None):
    return RowRules(plan_columns(mapping, columns, "f.csv"), custom)


def row(email="a@example.com", first="Ann", last="Lee", city="Oslo", state="", country="Norway", postal="0150"):
    return ["1", email, first, last, city, state, country, postal]


def test_default_mapping_picks_customer_insights_names_case_insensitively():
    plan = plan_columns(None, ["EMAIL", "firstname", "Address1_City", "CountryOrRegion", "ZipCode"], "f.csv")
    assert plan.describe(["EMAIL", "firstname", "Address1_City", "CountryOrRegion", "ZipCode"]) == {
        "email": "EMAIL",
        "first_name": "firstname",
        "city": "Address1_City",
        "country": "CountryOrRegion",
        "postal_code": "ZipCode",
    }


def test_default_mapping_prefers_primary_email():
    plan = plan_columns(None, ["Email", "PrimaryEmail"], "f.csv")
    assert plan.email == 1


def test_no_email_column_is_a_clear_error():
    with pytest.raises(SegmentError, match="no email column"):
        plan_columns(None, ["Name"], "f.csv")


def test_explicit_mapping_naming_a_missing_column_names_it():
    with pytest.raises(SegmentError, match="no column 'Mail' \\(mapped to email\\)"):
        plan_columns(FieldMapping({"email": "Mail"}), COLUMNS, "f.csv")


def test_a_good_row_becomes_a_trimmed_lower_cased_contact_without_empty_fields():
    contact, reason, truncated, rejects = rules().apply(row(email="  Ann.Lee@Example.COM ", first=" Ann "))
    assert contact == {
        "email": "ann.lee@example.com",
        "first_name": "Ann",
        "last_name": "Lee",
        "city": "Oslo",
        "country": "Norway",
        "postal_code": "0150",
    }
    assert (reason, truncated, rejects) == ("", False, [])


@pytest.mark.parametrize(
    ("email", "reason"),
    [
        ("", "missing email"),
        ("   ", "missing email"),
        ("no-at.example.com", "invalid email address"),
        ("a@b", "invalid email address"),
        ("a@@example.com", "invalid email address"),
        ("a b@example.com", "invalid email address"),
        ("x" * 250 + "@example.com", "invalid email address"),
        ("j\udce9@example.com", "undecodable bytes (not UTF-8) in column 2"),
    ],
)
def test_bad_emails_are_rejected_with_a_reason(email, reason):
    contact, got, _, _ = rules().apply(row(email=email))
    assert contact is None and got == reason


def test_a_ragged_row_is_rejected():
    contact, reason, _, _ = rules().apply(["1", "a@example.com"])
    assert contact is None and reason == "ragged row: 2 fields where the header has 8"


def test_over_long_values_are_cut_to_sendgrids_limits_and_flagged():
    contact, _, truncated, _ = rules().apply(row(first="F" * 80, city="C" * 70))
    assert truncated and len(contact["first_name"]) == 50 and len(contact["city"]) == 60


def test_undecodable_bytes_anywhere_reject_the_row_naming_the_column():
    contact, reason, _, _ = rules().apply(row(city="Tr\udcf8ndelag"))
    assert contact is None and reason == "undecodable bytes (not UTF-8) in column 5"
    contact, reason, _, _ = RowRules(plan_columns(None, COLUMNS, "f.csv"), encoding="cp1252").apply(
        [*row()[:7], "\udcff"]
    )
    assert contact is None and reason == "undecodable bytes (not cp1252) in column 8"


def test_identifiers_are_never_cut():
    columns = ["Email", "ExternalId"]
    mapping = FieldMapping({"email": "Email", "external_id": "ExternalId"})
    contact, _, truncated, rejects = rules(columns, mapping).apply(["a@example.com", "x" * 300])
    assert "external_id" not in contact and not truncated and rejects[0][0] == "external_id"


def test_alternate_emails_are_split_checked_and_capped():
    columns = ["Email", "Alt"]
    mapping = FieldMapping({"email": "Email", "alternate_emails": "Alt"})
    alt = "A@example.com; a@example.com, bad, b@example.com c@example.com d@example.com e@example.com f@example.com"
    contact, _, truncated, rejects = rules(columns, mapping).apply(["a@example.com", alt])
    assert contact["alternate_emails"] == [
        "b@example.com",
        "c@example.com",
        "d@example.com",
        "e@example.com",
        "f@example.com",
    ]
    assert not truncated and rejects == [("alternate_emails", "an alternate email is not a valid address; left out")]
    contact, _, truncated, _ = rules(columns, mapping).apply(["a@example.com", alt + " g@example.com"])
    assert truncated and len(contact["alternate_emails"]) == 5


def test_custom_fields_go_by_id_with_coerced_values():
    columns = ["Email", "Tier", "Points", "Since"]
    mapping = FieldMapping({"email": "Email"}, {"tier": "Tier", "points": "Points", "since": "Since"})
    custom = {
        "tier": CustomFieldDef("tier", "e1_T", "Text"),
        "points": CustomFieldDef("points", "e2_N", "Number"),
        "since": CustomFieldDef("since", "e3_D", "Date"),
    }
    contact, _, _, rejects = rules(columns, mapping, custom).apply(["a@example.com", "Gold", "12.5", "2024-02-29"])
    assert contact["custom_fields"] == {"e1_T": "Gold", "e2_N": 12.5, "e3_D": "02/29/2024"}
    contact, _, _, rejects = rules(columns, mapping, custom).apply(["a@example.com", "Gold", "lots", "yesterday"])
    assert contact["custom_fields"] == {"e1_T": "Gold"}
    assert [f for f, _ in rejects] == ["custom_fields.points", "custom_fields.since"]


@pytest.mark.parametrize(
    ("kind", "raw", "value"),
    [
        ("Number", "42", 42),
        ("Number", "-1.25", -1.25),
        ("Number", "1,234.5", 1234.5),
        ("Number", "1e3", 1000),
        ("Number", "1e30", 1e30),  # past 64 bits: the double SendGrid keeps
        ("Date", "2024-01-31", "01/31/2024"),
        ("Date", "2024-01-31T10:00:00Z", "01/31/2024"),
        ("Date", "01/31/2024", "01/31/2024"),
        ("Text", "x" * 1200, "x" * 1000),
    ],
)
def test_coercion(kind, raw, value):
    got, problem, _ = coerce_custom_value(CustomFieldDef("f", "id", kind), raw)
    assert problem == "" and got == value


@pytest.mark.parametrize(
    ("kind", "raw"),
    [("Number", "NaN"), ("Number", "1,5"), ("Number", "inf"), ("Number", "1e400"), ("Date", "31/31/2024")],
)
def test_values_that_do_not_fit_their_type_are_refused(kind, raw):
    _, problem, _ = coerce_custom_value(CustomFieldDef("f", "id", kind), raw)
    assert problem


NUMBER = CustomFieldDef("n", "id", "Number")


@pytest.mark.parametrize("raw", ["1e1000000", "1e10000000", "-9e999999999", "1" * 5000, "1" + "0" * 400])
def test_a_huge_number_is_refused_at_once_and_only_that_field(raw):
    started = time.perf_counter()
    value, problem, _ = coerce_custom_value(NUMBER, raw)
    assert time.perf_counter() - started < 0.05  # int(Decimal("1e1000000")) alone took about 40 s
    assert value is None and problem
    columns = ["Email", "Points"]
    mapping = FieldMapping({"email": "Email"}, {"n": "Points"})
    contact, reason, _, rejects = rules(columns, mapping, {"n": NUMBER}).apply(["a@example.com", raw])
    assert contact == {"email": "a@example.com"} and reason == ""
    assert [f for f, _ in rejects] == ["custom_fields.n"]


@pytest.mark.parametrize(
    ("raw", "value"),
    [("1e-400", 0.0), ("0e999999999", 0), ("9223372036854775807", 2**63 - 1), ("9223372036854775808", 2.0**63)],
)
def test_numbers_at_the_edges_of_the_ranges(raw, value):
    got, problem, _ = coerce_custom_value(NUMBER, raw)
    assert problem == "" and got == value and type(got) is type(value)


@settings(max_examples=300, deadline=None)
@given(
    mantissa=st.from_regex(r"-?[0-9]{1,40}(\.[0-9]{0,40})?", fullmatch=True),
    exponent=st.integers(min_value=-(10**12), max_value=10**12),
)
def test_any_number_is_judged_in_time_linear_in_its_length(mantissa, exponent):
    raw = f"{mantissa}e{exponent}"
    started = time.perf_counter()
    value, problem, _ = coerce_custom_value(NUMBER, raw)
    assert time.perf_counter() - started < 0.05
    exact = Decimal(raw)
    if problem:
        assert value is None and exact.copy_abs() > Decimal("1.7976931348623157e308")
    elif isinstance(value, int):
        assert exact == value
    else:
        assert value == float(exact)


@pytest.mark.parametrize("mapping", [None, FieldMapping({"email": "Mail"})])
def test_column_errors_never_repeat_the_column_names_which_may_be_a_data_row(mapping):
    columns = ["ann.lee@example.com", "Annabel", "Leeward", "+47 912 34 567"]
    with pytest.raises(SegmentError) as caught:
        plan_columns(mapping, columns, "f.csv")
    message = str(caught.value)
    assert "among its 4 columns" in message and "in column 1, 4)" in message and '"header": false' in message
    assert not any(value in message for value in columns)


def test_a_real_header_gets_no_data_hint():
    with pytest.raises(SegmentError) as caught:
        plan_columns(None, ["Name", "Address1_Line2"], "f.csv")
    assert "among its 2 columns" in str(caught.value) and "looks like data" not in str(caught.value)
