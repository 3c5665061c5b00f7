"""``check``: can this destination export now? Each check has a verdict and a detail to act on.

Only read calls reach SendGrid: nothing is created, nothing is sent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from shared.adapters.storage import BlobStore
from shared.errors import ConfigError, ExportError, SendGridAuthError, SendGridError, UnknownDestinationError
from shared.inputs.config import Destination, ListRef
from shared.inputs.mapping import plan_columns
from shared.inputs.segments import SegmentPlan, open_segment_file, resolve_segment
from shared.json_input import JsonObject
from shared.privacy import redact
from shared.run.destinations import load_destinations
from shared.run.lookups import SendGridList, custom_field_definitions, find_lists
from shared.run.ports import SendGridApi
from shared.run.runtime import Runtime


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def __post_init__(self) -> None:
        # Details repeat errors from files and from SendGrid: an address in one never reaches
        # the CLI's screen or an HTTP answer.
        self.detail = redact(self.detail)

    def as_dict(self) -> JsonObject:
        return asdict(self)


def run_checks(runtime: Runtime, name: str) -> list[Check]:
    """Raises :class:`UnknownDestinationError` only; every other fault is a failed check."""
    try:
        destination = load_destinations(runtime).get(name)
    except UnknownDestinationError:
        raise
    except ConfigError as exc:
        return [Check("config", False, str(exc))]
    checks = [
        Check("config", True, "the destinations.json entry is valid."),
        Check(
            "enabled",
            destination.enabled,
            "enabled." if destination.enabled else 'disabled: set "enabled": true to export it.',
        ),
        Check(
            "consent",
            destination.data_privacy_consent,
            "data_privacy_consent is given."
            if destination.data_privacy_consent
            else "data_privacy_consent is not given: nothing will be sent until it is true.",
        ),
    ]
    checks += _segment_checks(runtime, destination)
    checks.append(_bulk_import_check(runtime, destination))
    try:
        api_key = runtime.edges.secrets.get_secret(destination.api_key_secret)
    except ExportError as exc:
        checks.append(Check("secret", False, str(exc)))
        return [*checks, Check("api_key", False, "not checked: the secret could not be read.")]
    checks.append(Check("secret", True, f"secret '{destination.api_key_secret}' is readable."))
    client = runtime.edges.sendgrid(destination.api_base_url(runtime.settings.sendgrid_api_base_url), api_key)
    del api_key
    try:
        checks += _sendgrid_checks(client, destination)
    finally:
        client.close()
    return checks


def _bulk_import_check(runtime: Runtime, destination: Destination) -> Check:
    """Where a CSV import's file travels: told, and a warning for an EU destination (never a failure)."""
    mode, threshold = runtime.settings.bulk_import, runtime.settings.bulk_import_threshold
    if mode == "never":
        return Check("bulk_import", True, "off (SENDGRID_BULK_IMPORT=never): contacts go by upsert only.")
    when = "every run" if mode == "always" else f"runs with {threshold:,} contacts or more to send"
    if destination.region == "eu":
        return Check(
            "bulk_import",
            True,
            f"warning: {when} upload a CSV file of the contacts to SendGrid's upload bucket (a pre-signed S3 "
            "link in us-west-2), outside the EU, although this destination's region is 'eu'. Set "
            "SENDGRID_BULK_IMPORT=never to keep every contact on the EU API.",
        )
    return Check("bulk_import", True, f"{when} send by CSV import (the file goes to SendGrid's upload bucket).")


def _contact_count_check(client: SendGridApi) -> Check:
    """The account's contacts (what its plan's cap counts): told, never a failure of the check."""
    try:
        count = client.contact_count()
    except SendGridError as exc:
        return Check("contacts", True, f"the account's contact count could not be read: {exc}")
    return Check("contacts", True, f"the account holds {count:,} contacts (its plan's contact cap counts them).")


def _sendgrid_checks(client: SendGridApi, destination: Destination) -> list[Check]:
    checks: list[Check] = []
    try:
        scopes = client.scopes()
    except SendGridAuthError as exc:
        return [Check("api_key", False, str(exc))]
    except SendGridError as exc:
        return [Check("api_key", False, f"SendGrid could not be asked: {exc}")]
    checks.append(scope_check(scopes))
    checks.append(_contact_count_check(client))
    try:
        for ref, item in zip(destination.lists, find_lists(client, destination.lists), strict=True):
            checks.append(_list_check(ref, item))
        wanted = destination.mapping.custom_fields if destination.mapping else {}
        for field_name, d in custom_field_definitions(client, wanted).items():
            checks.append(
                Check(
                    f"custom_field:{field_name}",
                    d is not None,
                    f"exists, type {d.get('field_type')}."
                    if d
                    else "no custom field of this name in SendGrid: create it first.",
                )
            )
    except SendGridError as exc:
        checks.append(Check("sendgrid", False, str(exc)))
    return checks


def _list_check(ref: ListRef, item: SendGridList | None) -> Check:
    if ref.id is not None:
        return Check(f"list:{ref.id}", item is not None, "found." if item else "no list with this id in SendGrid.")
    if item is not None:
        return Check(f"list:{ref.name}", True, f"found (id {item.get('id')}).")
    creatable = ref.create_if_missing
    return Check(
        f"list:{ref.name}",
        creatable,
        "not found; the first run creates it." if creatable else 'not found, and "create_if_missing" is not set.',
    )


# SendGrid's published permission names: the new Marketing API's are read-type only
# (marketing.read, marketing.automation.read); the legacy Marketing Campaigns names carry the
# writes. No published name is known to prove write access to contacts and lists on its own.
WRITE_SCOPES = ("marketing_campaigns.create", "marketing_campaigns.update")
FULL_ACCESS_HINT = "give the key Marketing: Full Access (Settings > API Keys > Restricted Access)"


def scope_check(scopes: list[str]) -> Check:
    """Whether the key's scopes prove it can write contacts and lists; never a pass on hope."""
    marketing = sorted(s for s in scopes if s.startswith(("marketing.", "marketing_campaigns.")))
    if not marketing:
        return Check("api_key", False, f"accepted, but the key has no Marketing scopes: {FULL_ACCESS_HINT}.")
    if all(scope in scopes for scope in WRITE_SCOPES):
        return Check("api_key", True, f"accepted; Marketing write access ({', '.join(WRITE_SCOPES)}).")
    return Check(
        "api_key",
        False,
        f"unconfirmed: the key's Marketing scopes ({', '.join(marketing[:6])}) do not prove it can write "
        f"contacts and lists; {FULL_ACCESS_HINT}.",
    )


def require_mapped_columns(
    store: BlobStore, destination: Destination, plan: SegmentPlan, max_record_bytes: int
) -> None:
    """Every file's columns hold what the mapping names (only their header is read): a run
    checks this before it creates a list, so that a wrong column name leaves nothing behind."""
    for _, files in plan:
        for file in files:
            table = open_segment_file(store, file, destination.mapping, max_record_bytes)
            plan_columns(destination.mapping, table.columns, file.name)


def _segment_checks(runtime: Runtime, destination: Destination) -> list[Check]:
    checks = []
    for segment in destination.segments:
        try:
            blobs = resolve_segment(runtime.edges.segments, segment)
            require_mapped_columns(
                runtime.edges.segments, destination, [(segment, blobs)], runtime.settings.max_record_bytes
            )
            checks.append(
                Check(
                    f"segment:{segment.path}",
                    True,
                    f"{len(blobs)} file(s) found; their columns map to SendGrid fields.",
                )
            )
        except ExportError as exc:
            checks.append(Check(f"segment:{segment.path}", False, str(exc)))
    return checks
