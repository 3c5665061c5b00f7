"""model.json parsing and partition choice, on Microsoft's own samples and on built layouts."""

from __future__ import annotations

import json

import pytest

from shared.errors import SegmentError
from shared.inputs import cdm
from tests.conftest import shared_folder

SAMPLES = "samples/cdm/microsoft-CDM"


def sample(*parts: str) -> bytes:
    return shared_folder(SAMPLES, *parts).read_bytes()


def test_the_orders_products_sample_needs_a_table_and_its_partitions_are_elsewhere():
    entities = cdm.parse_model(sample("docs/schema/examples/OrdersProducts/model.json"), "m")
    assert [e.name for e in entities] == ["Orders", "Products"]
    with pytest.raises(SegmentError, match=r"holds 2 local entities \(Orders, Products\): set \"table\""):
        cdm.select_entity(entities, None, "m")
    orders = cdm.select_entity(entities, "orders", "m")
    assert orders.attributes[:3] == ("OrderID", "CustomerID", "EmployeeID")
    assert "?snapshot=" in orders.partitions[0].location
    with pytest.raises(SegmentError, match="not a blob in the segments container of this storage account: refused"):
        cdm.partition_files(orders, "ci/", set(), lambda url: None, "m")


def test_reference_entities_are_refused_and_local_ones_without_partitions_read_their_folder():
    entities = cdm.parse_model(sample("docs/schema/examples/OrdersProductsCustomersLinked/model.json"), "m")
    with pytest.raises(SegmentError, match="'Orders' is a ReferenceEntity, defined in another model"):
        cdm.select_entity(entities, "Orders", "m")
    customers = cdm.select_entity(entities, None, "m")  # the only local entity
    assert customers.name == "Customers" and customers.partitions == ()
    with pytest.raises(SegmentError, match="lists no partitions and ci/Customers/ holds no data files"):
        cdm.partition_files(customers, "ci/", set(), lambda url: None, "m")
    files = cdm.partition_files(customers, "ci/", {"ci/Customers/2024/1/2/0300/Customers_1.csv"}, lambda u: None, "m")
    assert [f.blob for f in files] == ["ci/Customers/2024/1/2/0300/Customers_1.csv"]
    assert files[0].csv.header is False and files[0].csv.columns == customers.attributes


def test_the_partition_traits_sample_has_no_attributes_and_uncommon_settings():
    entities = cdm.parse_model(
        sample(
            "objectModel/TestData/Persistence/ModelJson/DataPartition/TestLoadingCsvPartitionTraits/Input/model.json"
        ),
        "m",
    )
    with pytest.raises(SegmentError, match="'someEntity' has no attributes"):
        cdm.select_entity(entities, None, "m")
    options = cdm.csv_options(entities[0].partitions[0].format, ("A", "B"), "m")
    assert (options.header, options.delimiter, options.quoted, options.encoding) == (False, ";", False, "utf-8")
    assert options.skip_repeated_header


def test_the_adls_sample_has_placeholder_urls_which_are_refused():
    entities = cdm.parse_model(sample("samples/4-read-local-save-adls/sample-data/model.json"), "m")
    customers = cdm.select_entity(entities, "Customers", "m")
    options = cdm.csv_options(customers.partitions[0].format, customers.attributes, "m")
    assert options.header is True and options.delimiter == ","
    with pytest.raises(SegmentError, match="refused"):
        cdm.partition_files(customers, "x/", set(), lambda url: None, "m")


def test_every_sample_parses_or_is_refused_with_a_reason():
    for path in sorted(shared_folder(SAMPLES).rglob("model.json")):
        entities = cdm.parse_model(path.read_bytes(), str(path))
        for entity in entities:
            try:
                cdm.select_entity(entities, entity.name, str(path))
            except SegmentError as exc:
                assert entity.name in str(exc) and ("no attributes" in str(exc) or "another model" in str(exc))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"{", "not valid JSON"),
        (b"[]", 'no "entities" array'),
        (b'{"entities": [{}]}', "entity #0 has no name"),
        (b'{"entities": [{"name": "A", "attributes": [{}]}]}', "'A': attribute #1 has no name"),
        (b'{"entities": [{"name": "A", "partitions": [{"name": "p"}]}]}', "'A': partition #1 has no location"),
        # Attributes and partitions of the wrong type: a clear error, not a TypeError.
        (b'{"entities": [{"name": "A", "attributes": 5}]}', "'A': \"attributes\" must be an array, not a number"),
        (b'{"entities": [{"name": "A", "attributes": "Email"}]}', '"attributes" must be an array, not a string'),
        (b'{"entities": [{"name": "A", "attributes": [{"name": 7}]}]}', "attribute #1 has no name"),
        (b'{"entities": [{"name": "A", "attributes": [{"name": ""}]}]}', "attribute #1 has no name"),
        (b'{"entities": [{"name": "A", "partitions": {"a": 1}}]}', '"partitions" must be an array, not an object'),
        (b'{"entities": [{"name": "A", "partitions": [3]}]}', "partition #1 has no location"),
        (b'{"entities": [{"name": "A", "$type": ["LocalEntity"]}]}', '"\\$type" must be a string'),
        (b'{"entities": [{"name": ["A"]}]}', "entity #0 has no name"),
    ],
)
def test_malformed_models_are_refused_with_a_reason(text, message):
    with pytest.raises(SegmentError, match=message):
        cdm.parse_model(text, "m")


def model_with(partitions: list[str]) -> cdm.Entity:
    raw = {
        "entities": [
            {
                "$type": "LocalEntity",
                "name": "Seg",
                "attributes": [{"name": "Email"}],
                "partitions": [{"name": f"p{i}", "location": url} for i, url in enumerate(partitions)],
            }
        ]
    }
    return cdm.select_entity(cdm.parse_model(json.dumps(raw), "m"), "Seg", "m")


def to_blob(url: str):
    prefix = "https://acct.blob.core.windows.net/segments/"
    return (url[len(prefix) :], None) if url.startswith(prefix) else None


def test_the_newest_complete_snapshot_is_chosen():
    base = "https://acct.blob.core.windows.net/segments/ci/Seg/"
    entity = model_with(
        [
            f"{base}2024/01/01/0300/Seg_1.csv",
            f"{base}2024/01/02/0300/Seg_1.csv",
            f"{base}2024/01/02/0300/Seg_2.csv",
            f"{base}2024/01/03/0300/Seg_1.csv",
        ]
    )
    existing = {
        "ci/Seg/2024/01/01/0300/Seg_1.csv",
        "ci/Seg/2024/01/02/0300/Seg_1.csv",
        "ci/Seg/2024/01/02/0300/Seg_2.csv",
    }  # 01/03 is still being written
    files = cdm.partition_files(entity, "ci/", existing, to_blob, "m")
    assert [f.blob for f in files] == ["ci/Seg/2024/01/02/0300/Seg_1.csv", "ci/Seg/2024/01/02/0300/Seg_2.csv"]


def test_a_missing_partition_outside_snapshots_fails():
    entity = model_with(["https://acct.blob.core.windows.net/segments/ci/Seg_1.csv"])
    with pytest.raises(SegmentError, match=r"partition ci/Seg_1\.csv is missing"):
        cdm.partition_files(entity, "ci/", set(), to_blob, "m")


def test_column_headers_given_as_strings_or_booleans():
    for value, expected in (("true", True), ("TRUE", True), ("false", False), (True, True), (False, False)):
        assert cdm.csv_options({"columnHeaders": value}, ("A",), "m").header is expected
    with pytest.raises(SegmentError, match="only CSV"):
        cdm.csv_options({"$type": "ParquetFormatSettings"}, ("A",), "m")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"columnHeaders": "yes"}, '"columnHeaders" must be true or false, not a string'),
        ({"columnHeaders": 1}, '"columnHeaders" must be true or false, not a number'),
        ({"columnHeaders": ["true"]}, '"columnHeaders" must be true or false, not an array'),
        ({"delimiter": [","]}, '"delimiter" must be a string, not an array'),
        ({"quoteStyle": None}, '"quoteStyle" must be a string, not null'),
        ({"encoding": 8}, '"encoding" must be a string, not a number'),
        ({"$type": {"x": 1}}, '"\\$type" must be a string, not an object'),
    ],
)
def test_file_format_settings_of_the_wrong_type_are_named(settings, message):
    with pytest.raises(SegmentError, match=message):
        cdm.csv_options(settings, ("A",), "m")


def test_a_refused_location_is_named_without_its_query_which_may_be_a_sas_token():
    entity = model_with(["https://other.blob.core.windows.net/segments/ci/Seg_1.csv?sv=2024&sig=SECRETSIG"])
    with pytest.raises(SegmentError, match="refused") as caught:
        cdm.partition_files(entity, "ci/", set(), to_blob, "m")
    assert "SECRETSIG" not in str(caught.value) and "other.blob.core.windows.net/segments/ci/Seg_1.csv" in str(
        caught.value
    )
