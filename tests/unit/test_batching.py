import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.run.send.batching import (
    MAX_BATCH_BYTES,
    MAX_CONTACTS_PER_BATCH,
    BatchSpool,
    ContactNotEncodable,
    ContactTooLarge,
    encode_contact,
)

LIST_ID = "ca7a3796-e8a8-4029-9ccb-df8937940562"


def spool_of(contacts, **limits):
    spool = BatchSpool([LIST_ID], **limits)
    for i, contact in enumerate(contacts):
        spool.add(encode_contact(contact), "f.csv", i + 2)
    return spool


def test_limits_are_sendgrids():
    assert (MAX_CONTACTS_PER_BATCH, MAX_BATCH_BYTES) == (30_000, 6_000_000)


def test_batches_respect_the_contact_limit_and_keep_every_contact_once():
    contacts = [{"email": f"p{i}@example.com"} for i in range(25)]
    spool = spool_of(contacts, max_contacts=10)
    batches = list(spool.batches())
    assert [b.count for b in batches] == [10, 10, 5]
    sent = [c for b in batches for c in json.loads(b.body)["contacts"]]
    assert sent == contacts
    assert all(json.loads(b.body)["list_ids"] == [LIST_ID] for b in batches)


def test_batches_respect_the_byte_limit_exactly():
    contacts = [{"email": f"p{i}@example.com", "first_name": "Zoë" * 10} for i in range(200)]
    limit = 2_000
    batches = list(spool_of(contacts, max_bytes=limit).batches())
    assert all(len(b.body) <= limit for b in batches)
    # Each batch is as full as it can be: the next contact would not have fitted.
    for this, following in itertools.pairwise(batches):
        first_next = json.loads(following.body)["contacts"][0]
        assert len(this.body) + 1 + len(encode_contact(first_next)) > limit
    assert sum(b.count for b in batches) == 200


def test_origins_point_back_at_the_source_line():
    batch = next(spool_of([{"email": "a@example.com"}, {"email": "b@example.com"}]).batches())
    assert batch.origin(1).source == "f.csv" and batch.origin(1).line == 3 and batch.origin(1).email == "b@example.com"


def test_a_contact_that_can_never_fit_is_refused():
    spool = BatchSpool([LIST_ID], max_bytes=100)
    with pytest.raises(ContactTooLarge):
        spool.add(encode_contact({"email": "a@example.com", "city": "x" * 200}), "f.csv", 2)


def test_no_contacts_no_batches():
    assert list(BatchSpool([LIST_ID]).batches()) == []


def test_the_encoding_is_compact_utf8_json_and_refuses_undecodable_text():
    contact = {"email": "a@example.com", "first_name": 'Zoë "Z"', "custom_fields": {"e1_N": 1.5, "e2_T": None}}
    encoded = encode_contact(contact)
    assert json.loads(encoded) == contact and b" " not in encoded.replace(b"Zo\xc3\xab ", b"")
    assert "Zoë".encode() in encoded  # not \u-escaped
    with pytest.raises(ContactNotEncodable, match="surrogates"):
        encode_contact({"email": "a@example.com", "city": "\udcff"})
    with pytest.raises(ContactNotEncodable):
        encode_contact({"email": "a@example.com", "city": object()})


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.lists(st.integers(min_value=0, max_value=40), max_size=25), max_size=6),
    st.integers(min_value=1, max_value=7),
    st.integers(min_value=130, max_value=400),
)
def test_contacts_added_in_runs_are_packed_as_one_by_one_greedily(runs, max_contacts, max_bytes):
    spool = BatchSpool(["l"], max_contacts=max_contacts, max_bytes=max_bytes)
    contacts: list[bytes] = []
    expected: list[list[bytes]] = []
    current: list[bytes] = []
    for run in runs:
        encoded = [encode_contact({"email": f"p{len(contacts) + i}@x.io", "city": "c" * n}) for i, n in enumerate(run)]
        spool.add_many(encoded, "f.csv", list(range(len(encoded))), [7] * len(encoded), [9] * len(encoded))
        contacts += encoded
    for contact in contacts:  # the reference: a batch takes each next contact while it fits
        body = spool.empty_body_bytes + sum(len(c) + 1 for c in current) + len(contact)
        if current and (len(current) == max_contacts or body > max_bytes):
            expected.append(current)
            current = []
        current.append(contact)
    expected += [current] if current else []
    batches = list(spool.batches())
    assert [[b.encoded(i) for i in range(b.count)] for b in batches] == expected
    assert all(len(b.body) <= max_bytes and json.loads(b.body)["list_ids"] == ["l"] for b in batches)


def test_only_a_position_sendgrid_can_mean_is_taken_from_a_400():
    from shared.run.send.sending import errors_by_position

    errors = [{"field": f"contacts[{p}].email", "message": "bad"} for p in ("3", "-1", "²", "x")]
    assert list(errors_by_position(errors)) == [3]
