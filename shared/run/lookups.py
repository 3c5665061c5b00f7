"""Finding a destination's lists and custom fields in SendGrid: one way, for ``check`` and the run.

Nothing here creates anything: ``check`` only reads, and the run creates a missing list later,
once it knows it will send (see :mod:`shared.run.destinations`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from shared.inputs.config import ListRef
from shared.json_input import JsonObject
from shared.run.ports import SendGridApi

SendGridList = JsonObject


def find_lists(client: SendGridApi, refs: Sequence[ListRef]) -> Iterator[SendGridList | None]:
    """Each list as SendGrid has it, None where there is none, one ref at a time: by id, or else
    by exact name (the first of that name). All lists are fetched once, and only if one is named."""
    named: list[SendGridList] | None = None
    for ref in refs:
        if ref.id is not None:
            yield client.get_list(ref.id)
            continue
        if named is None:
            named = list(client.iter_lists())
        yield next((item for item in named if item.get("name") == ref.name), None)


def custom_field_definitions(client: SendGridApi, names: Iterable[str]) -> dict[str, JsonObject | None]:
    """SendGrid's definition of each named custom field, None where it has none. SendGrid matches
    field names case-insensitively, and so does this."""
    wanted = list(names)
    if not wanted:
        return {}
    definitions = client.field_definitions().get("custom_fields") or []
    by_name = {str(d.get("name")).lower(): d for d in definitions if isinstance(d, dict)}
    return {name: by_name.get(name.lower()) for name in wanted}
