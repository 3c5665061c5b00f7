"""A destination as the run meets it: its configuration, whether it may run now, and its
SendGrid lists and custom fields (found with :mod:`shared.run.lookups`, created only here)."""

from __future__ import annotations

import logging

from shared.adapters.storage import BlobNotFound, BlobTooLarge
from shared.errors import ConfigError, ExportError
from shared.inputs.config import Destination, DestinationsConfig, parse_destinations
from shared.inputs.rows import CustomFieldDef
from shared.run.lookups import SendGridList, custom_field_definitions, find_lists
from shared.run.ports import SendGridApi
from shared.run.records import RunRecord
from shared.run.runtime import Runtime

log = logging.getLogger(__name__)


class DestinationDisabledError(ConfigError):
    pass


# A destination takes a few hundred bytes; a file past this is another file uploaded by mistake
# (a segment), and is not read into memory.
MAX_DESTINATIONS_BYTES = 4 * 1024 * 1024


def load_destinations(runtime: Runtime) -> DestinationsConfig:
    name = runtime.settings.destinations_blob
    try:
        text = runtime.edges.exports.read_bytes(name, max_bytes=MAX_DESTINATIONS_BYTES)
    except BlobNotFound:
        raise ConfigError(
            f"{name} not found in container '{runtime.settings.exports_container}': upload it "
            "(see README, 'destinations.json')."
        ) from None
    except BlobTooLarge:
        raise ConfigError(
            f"{name} is over {MAX_DESTINATIONS_BYTES:,} bytes, far more than any list of "
            "destinations: not read. Upload the right file."
        ) from None
    return parse_destinations(text, source=name)


def exportable_destination(runtime: Runtime, name: str, config: DestinationsConfig | None = None) -> Destination:
    """The destination, if it may be exported now; else the error that says why not."""
    destination = (config or load_destinations(runtime)).get(name)
    if not destination.enabled:
        raise DestinationDisabledError(
            'is disabled; set "enabled": true to export it.', destination=name, field="enabled"
        )
    destination.require_consent()
    return destination


def require_lists(client: SendGridApi, destination: Destination) -> list[SendGridList | None]:
    """Each list the destination names, as SendGrid has it, or None where it is to be created.
    Creates nothing: that waits until the run knows it will send."""
    found: list[SendGridList | None] = []
    for ref, item in zip(destination.lists, find_lists(client, destination.lists), strict=True):
        if item is None and (ref.id is not None or not ref.create_if_missing):
            hint = "" if ref.id else ' (or set "create_if_missing": true)'
            raise ExportError(f"SendGrid has no {ref.describe()}: create it in SendGrid first{hint}.")
        found.append(item)
    return found


def create_lists(
    client: SendGridApi, destination: Destination, found: list[SendGridList | None], record: RunRecord, *, dry_run: bool
) -> list[str]:
    """The ids of the destination's lists, creating those not found (a dry run only notes them)."""
    ids: list[str] = []
    for ref, item in zip(destination.lists, found, strict=True):
        if item is not None:
            ids.append(item["id"])
            record.lists.append({"id": item["id"], "name": item.get("name"), "action": "found"})
            continue
        if dry_run:
            record.lists.append({"id": None, "name": ref.name, "action": "would_create"})
            continue
        created = client.create_list(ref.name or "")
        ids.append(created["id"])
        record.lists.append({"id": created["id"], "name": ref.name, "action": "created"})
        log.info("created SendGrid list %s for %s", created["id"], destination.name)
    return ids


def resolve_custom_fields(client: SendGridApi, destination: Destination) -> dict[str, CustomFieldDef]:
    """The mapping's custom fields as SendGrid defines them; a missing one fails the run."""
    wanted = dict(destination.mapping.custom_fields) if destination.mapping else {}
    defined = custom_field_definitions(client, wanted)
    missing = sorted(name for name, definition in defined.items() if definition is None)
    if missing:
        raise ConfigError(
            f"SendGrid has no custom field named {', '.join(repr(m) for m in missing)}: create "
            "it in SendGrid (Marketing > Custom Fields) or fix the mapping.",
            destination=destination.name,
            field="mapping.custom_fields",
        )
    return {
        name: CustomFieldDef(name=name, id=str(definition["id"]), field_type=str(definition["field_type"]))
        for name, definition in defined.items()
        if definition is not None
    }


def refuse_mirror_on_shared_lists(
    config: DestinationsConfig, destination: Destination, found: list[SendGridList | None]
) -> None:
    """Mirror mode removes by its own state alone, so it would take off a list the people another
    destination sends to the same list (and that one would never put them back): refuse it.

    Another destination may use another API key of the same account, so it is compared whatever
    its key: a list it names by id against this destination's lists' ids, one it names by name
    against their names (SendGrid's, or the name of one still to be created). Another account may
    well have a list of that name too: the error says to rename one, which is safe either way."""
    ids = {str(item["id"]) for item in found if item is not None}
    names = {str(item.get("name")) for item in found if item is not None}
    names |= {ref.name for ref, item in zip(destination.lists, found, strict=True) if item is None and ref.name}
    for other in config.destinations.values():
        if other.name == destination.name:
            continue
        same_key = other.api_key_secret == destination.api_key_secret and other.region == destination.region
        for ref in other.lists:
            if (ref.id is not None and ref.id in ids) or (ref.id is None and ref.name in names):
                hint = "" if same_key else " (if it is another SendGrid account, give the lists different names)"
                raise ConfigError(
                    f"mirror mode would remove contacts that destination '{other.name}' also sends to the "
                    f"SendGrid list {ref.describe()}{hint}; give each mirror destination a list of its own, "
                    'or set "mode": "upsert".',
                    destination=destination.name,
                    field="mode",
                )
