"""Property-based: whatever the rows, every row is accounted for exactly once."""

from __future__ import annotations

import csv
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_export_core import run, setup

emails = st.one_of(
    st.sampled_from(["a@example.com", "B@Example.com", " b@example.com ", "c@example.org", "d@example.net"]),
    st.text(max_size=12),  # mostly not addresses at all
    st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.(com|org)", fullmatch=True),
)
values = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=70)
rows = st.lists(st.tuples(emails, values, values), max_size=40)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows, extra_field=st.booleans())
def test_counts_always_add_up(rows, extra_field):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["Email", "FirstName", "City"])
    for email, first, city in rows:
        writer.writerow(
            [email, first, city, "extra"] if extra_field and first.startswith("x") else [email, first, city]
        )
    runtime, fake = setup(csv_text=out.getvalue())
    record = run(runtime)
    c = record.counts
    assert c.read == len(rows)
    assert c.read == c.invalid + c.duplicate + c.unchanged + c.sent
    assert c.sent == c.accepted + c.errored
    sent = [contact["email"] for body in fake.bodies for contact in body["contacts"]]
    assert len(sent) == len(set(sent)) == c.sent
    assert all(len(contact.get("first_name", "")) <= 50 for body in fake.bodies for contact in body["contacts"])
