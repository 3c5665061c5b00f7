"""Every request the client sends is valid against SendGrid's published OpenAPI documents, and the
limits the core and the simulator enforce are the documents' own."""

from __future__ import annotations

import json

import pytest

from shared import settings
from shared.adapters import sendgrid
from shared.inputs import rows
from shared.run.export import queue_run, run_export
from shared.run.records import ExportOptions
from shared.run.send import batching
from tests.conftest import destination, make_runtime, shared_folder
from tests.contract.openapi import OpenApiContract
from tools.standins import sendgrid as sendgrid_simulator


@pytest.fixture(scope="module")
def contract() -> OpenApiContract:
    return OpenApiContract(shared_folder("sendgrid-oai"))


def contact_request(contract: OpenApiContract) -> dict:
    return contract.schema("tsg_mc_contacts_v3.json", "/components/schemas/ContactRequest")


def upsert_body(contract: OpenApiContract) -> dict:
    return contract.schema(
        "tsg_mc_contacts_v3.json",
        "/paths/~1v3~1marketing~1contacts/put/requestBody/content/application~1json/schema",
    )


@pytest.mark.integration
def test_every_request_of_an_export_matches_the_openapi_documents(contract, workspace, simulator):
    simulator.config(record_bodies=True)
    simulator.state.add_custom_field("loyalty_tier", "Text")
    simulator.state.add_custom_field("points", "Number")
    simulator.state.add_custom_field("member_since", "Date")
    existing = simulator.state.add_list("Existing")["id"]
    header = "Email,First,Last,Addr1,Addr2,City,State,Zip,Country,ExternalId,Phone,Alt,Tier,Points,Since\n"
    row = (
        "a@example.com,Ann,Lee,1 Main St,Apt 2,Oslo,Oslo,0150,Norway,ext-1,+4712345678,alt@example.com,"
        "Gold,12,2024-02-29\n"
    )
    workspace.put_segment("people.csv", header + row + "b@example.com,,,,,,,,,,,,,,\n")
    mapping = {
        "email": "Email",
        "first_name": "First",
        "last_name": "Last",
        "address_line_1": "Addr1",
        "address_line_2": "Addr2",
        "city": "City",
        "state_province_region": "State",
        "postal_code": "Zip",
        "country": "Country",
        "external_id": "ExternalId",
        "phone_number_id": "Phone",
        "alternate_emails": "Alt",
        "custom_fields": {"loyalty_tier": "Tier", "points": "Points", "member_since": "Since"},
    }
    workspace.put_destinations(
        destination(lists=[{"id": existing}, {"name": "Created", "create_if_missing": True}], mapping=mapping)
    )
    runtime = make_runtime(workspace)
    record = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli", options=ExportOptions()))
    assert record.status == "succeeded", record.errors

    sent = simulator.state.requests
    seen = {(r["method"], contract.operation(r["method"], r["path"]).template) for r in sent}
    assert seen >= {
        ("GET", "/v3/marketing/lists/{id}"),
        ("GET", "/v3/marketing/lists"),
        ("POST", "/v3/marketing/lists"),
        ("GET", "/v3/marketing/field_definitions"),
        ("PUT", "/v3/marketing/contacts"),
        ("GET", "/v3/marketing/contacts/imports/{id}"),
    }
    problems = [p for r in sent for p in contract.check(r["method"], r["path"], r["query"], r.get("body"))]
    assert problems == []
    contact = simulator.snapshot()["contacts"]["a@example.com"]
    assert contact["alternate_emails"] == ["alt@example.com"] and len(contact["custom_fields"]) == 3


def test_the_validator_catches_what_sendgrid_would_refuse(contract):
    # A check that cannot fail proves nothing: these bodies break the documents.
    assert contract.check("PUT", "/v3/marketing/contacts", "", '{"list_ids": ["x"], "contacts": []}')
    assert contract.check(
        "PUT",
        "/v3/marketing/contacts",
        "",
        '{"contacts": [{"email": "a@example.com", "first_name": "' + "x" * 51 + '"}]}',
    )
    assert contract.check("GET", "/v3/marketing/lists", "page_size=5000", None)
    assert contract.check("GET", "/v3/marketing/lists", "pagesize=5", None)
    with pytest.raises(AssertionError, match="not an operation"):
        contract.operation("GET", "/v3/marketing/contactz")


def test_batch_limits_are_the_documents(contract):
    body = upsert_body(contract)
    assert (
        body["properties"]["contacts"]["maxItems"] == batching.MAX_CONTACTS_PER_BATCH == sendgrid_simulator.MAX_CONTACTS
    )
    description = contract.schema("tsg_mc_contacts_v3.json", "/paths/~1v3~1marketing~1contacts/put")["description"]
    assert "up to 30,000 contacts, or 6MB of data" in description
    assert batching.MAX_BATCH_BYTES == sendgrid_simulator.DOCUMENTED_MAX_BODY_BYTES == 6_000_000
    # Production refuses more than 4 MiB (README, "SendGrid"): the simulator's default, and the
    # run's default cap sits below it with headroom; no setting may pass the documented 6 MB.
    assert sendgrid_simulator.MAX_BODY_BYTES == 4 * 1024 * 1024
    assert settings.DEFAULT_MAX_BATCH_BYTES <= 0.95 * sendgrid_simulator.MAX_BODY_BYTES
    assert settings.MAX_BATCH_BYTES_RANGE[1] == batching.MAX_BATCH_BYTES


def test_field_limits_are_the_documents(contract):
    properties = contact_request(contract)["properties"]
    documented = {name: spec.get("maxLength") for name, spec in properties.items() if spec.get("type") == "string"}
    assert documented == sendgrid_simulator.CONTACT_STRING_LIMITS
    for name, limit in {**rows.FIELD_LIMITS, **rows.IDENTIFIER_LIMITS}.items():
        assert documented[name] in (limit, None), name
    assert properties["alternate_emails"]["maxItems"] == rows.MAX_ALTERNATE_EMAILS
    assert properties["email"]["maxLength"] == rows.EMAIL_MAX
    assert set(rows.FIELD_LIMITS) | set(rows.IDENTIFIER_LIMITS) | {"email", "postal_code", "alternate_emails"} <= set(
        properties
    )


def test_search_and_list_removal_limits_are_the_documents(contract):
    search = contract.schema("tsg_mc_contacts_v3.json", "/paths/~1v3~1marketing~1contacts~1search~1emails/post")
    assert "up to 100 contacts" in search["description"] and sendgrid_simulator.SEARCH_EMAILS_MAX == 100
    item = search["requestBody"]["content"]["application/json"]["schema"]["properties"]["emails"]["items"]
    assert item["maxLength"] == sendgrid_simulator.SEARCH_EMAIL_MAX_LENGTH == sendgrid.SEARCH_EMAIL_MAX_LENGTH == 100
    assert "400" in search["responses"] and "invalid" in search["description"]
    removal = contract.schema("tsg_mc_lists_v3.json", "/paths/~1v3~1marketing~1lists~1{id}~1contacts/delete")
    assert "job_id" in json.dumps(removal["responses"]["202"]) and "contact IDs do not exist" in json.dumps(
        removal["responses"]["404"]
    )
    lists_get = contract.schema("tsg_mc_lists_v3.json", "/paths/~1v3~1marketing~1lists/get")
    page_size = next(p for p in lists_get["parameters"] if p["name"] == "page_size")
    assert page_size["schema"]["maximum"] == 1000


@pytest.mark.integration
def test_every_request_of_the_bulk_paths_matches_the_openapi_documents(contract, workspace, simulator):
    # A run by CSV import, then a mirror run whose departed contacts are found by export.
    simulator.config(record_bodies=True)
    people = "".join(f"p{i}@example.com,Name{i}\n" for i in range(300))
    workspace.put_segment("people.csv", "Email,First\n" + people)
    workspace.put_destinations(
        destination(mode="mirror", max_removal_fraction=1.0, mapping={"email": "Email", "first_name": "First"})
    )
    runtime = make_runtime(workspace, bulk_import="always")
    assert run_export(runtime, queue_run(runtime, "newsletter", trigger="cli")).status == "succeeded"
    workspace.put_segment("people.csv", "Email,First\n" + people[: people.index("p100@")])
    second = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert second.status == "succeeded" and second.removals["found_by"] == "export", second.removals
    sent = [r for r in simulator.state.requests if r["path"].startswith("/v3/")]
    seen = {(r["method"], contract.operation(r["method"], r["path"]).template) for r in sent}
    assert seen >= {
        ("PUT", "/v3/marketing/contacts/imports"),
        ("POST", "/v3/marketing/contacts/exports"),
        ("GET", "/v3/marketing/contacts/exports/{id}"),
    }
    problems = [p for r in sent for p in contract.check(r["method"], r["path"], r["query"], r.get("body"))]
    assert problems == []


def test_the_import_limits_are_the_documents(contract):
    from shared.run.send import import_file

    description = contract.schema("tsg_mc_contacts_v3.json", "/paths/~1v3~1marketing~1contacts~1imports/put")[
        "description"
    ]
    assert "up to one million contacts or 5GB of data" in description
    assert import_file.MAX_IMPORT_ROWS == sendgrid_simulator.MAX_IMPORT_ROWS == 1_000_000
    assert import_file.MAX_IMPORT_BYTES == sendgrid_simulator.MAX_IMPORT_BYTES == 5_000_000_000
    status = contract.schema("tsg_mc_contacts_v3.json", "/components/schemas/ContactExport")
    assert {"expires_at", "status"} <= set(status["required"]) and "`ready`" in status["properties"]["status"][
        "description"
    ]
