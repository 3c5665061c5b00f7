"""Customer Insights CDM folders: ``model.json``, its entities, and which partitions to read.

An entity (named by the segment's ``table``, or the only one) gives the column names (its
attributes, in order) and its partitions. Partition locations are absolute URLs: each must name a
blob in the segments container's own account and container, or it is refused. Where partitions
sit in timestamped snapshot folders (``<Table>/<YYYY>/<MM>/<DD>/<HHMM>/<Table>_<n>.csv``), only the
newest complete snapshot is read. An entity without partitions is read from its snapshot folders.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.errors import SegmentError
from shared.inputs.destination import CsvOptions
from shared.json_input import JsonDocumentError, JsonObject, load_json

MODEL_FILE = "model.json"
# Customer Insights writes model.json files of kilobytes, a few MB with thousands of partitions.
MAX_MODEL_BYTES = 16 * 1024 * 1024
_SNAPSHOT = re.compile(r"(?:^|/)(?P<table>[^/]+)/(?P<y>\d{4})/(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<hm>\d{4})/[^/]+$")
_DATA_SUFFIXES = (".csv", ".csv.gz", ".txt", ".txt.gz")


@dataclass(frozen=True)
class Partition:
    name: str
    location: str
    format: JsonObject


@dataclass(frozen=True)
class Entity:
    name: str
    kind: str
    attributes: tuple[str, ...]
    partitions: tuple[Partition, ...]


@dataclass(frozen=True)
class PartitionFile:
    """A blob to read for the entity, with the dialect its partition declares."""

    blob: str
    snapshot: str | None
    csv: CsvOptions
    # Named by model.json. A file found by listing the entity's folder (no partitions listed) may
    # be one of a snapshot still being written: its read cannot be proven complete.
    listed: bool = True


def parse_model(text: bytes | str, source: str) -> list[Entity]:
    try:
        doc = load_json(text, source)
    except JsonDocumentError as exc:
        raise SegmentError(str(exc)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("entities"), list):
        raise SegmentError(f'{source} is not a CDM model.json: it has no "entities" array.')
    entities = []
    for index, raw in enumerate(doc["entities"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
            raise SegmentError(f"{source}: entity #{index} has no name.")
        where = f"{source}: entity '{raw['name']}'"
        kind = raw.get("$type", "LocalEntity")
        if not isinstance(kind, str):
            raise SegmentError(f'{where}: "$type" must be a string, not {_json_type(kind)}.')
        attributes = []
        for number, attribute in enumerate(_array(raw, "attributes", where), start=1):
            if not isinstance(attribute, dict) or not isinstance(attribute.get("name"), str) or not attribute["name"]:
                raise SegmentError(f"{where}: attribute #{number} has no name (a non-empty string).")
            attributes.append(attribute["name"])
        partitions = []
        for number, partition in enumerate(_array(raw, "partitions", where), start=1):
            if not isinstance(partition, dict) or not isinstance(partition.get("location"), str):
                raise SegmentError(f"{where}: partition #{number} has no location (a URL string).")
            settings = partition.get("fileFormatSettings") or {}
            if not isinstance(settings, dict):
                raise SegmentError(f"{where}: partition #{number} has malformed fileFormatSettings (not an object).")
            partitions.append(Partition(str(partition.get("name", "")), partition["location"], settings))
        entities.append(Entity(raw["name"], kind, tuple(attributes), tuple(partitions)))
    return entities


def _array(raw: JsonObject, key: str, where: str) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SegmentError(f'{where}: "{key}" must be an array, not {_json_type(value)}.')
    return value


def _json_type(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }
    return names.get(type(value), "null")


def _without_query(url: str) -> str:
    # A location may carry a SAS token: never repeat it in a message.
    return url.split("?", 1)[0].split("#", 1)[0]


def select_entity(entities: list[Entity], table: str | None, source: str) -> Entity:
    names = ", ".join(e.name for e in entities) or "none"
    if table is None:
        local = [e for e in entities if e.kind == "LocalEntity"]
        if len(local) != 1:
            raise SegmentError(f'{source} holds {len(local)} local entities ({names}): set "table" on the segment.')
        entity = local[0]
    else:
        found = [e for e in entities if e.name.lower() == table.lower()]
        if not found:
            raise SegmentError(f"{source} has no entity '{table}' (entities: {names}).")
        entity = found[0]
    if entity.kind != "LocalEntity":
        raise SegmentError(
            f"{source}: entity '{entity.name}' is a {entity.kind}, defined in another model: not readable here."
        )
    if not entity.attributes:
        raise SegmentError(f"{source}: entity '{entity.name}' has no attributes, so its columns are unknown.")
    return entity


def csv_options(settings: JsonObject, attributes: tuple[str, ...], source: str) -> CsvOptions:
    """The dialect of a partition's ``fileFormatSettings``; CDM's defaults: no header, ',' and '"'."""
    for key in ("$type", "delimiter", "quoteStyle", "encoding"):
        if key in settings and not isinstance(settings[key], str):
            raise SegmentError(
                f'{source}: fileFormatSettings "{key}" must be a string, not {_json_type(settings[key])}.'
            )
    kind = settings.get("$type", "CsvFormatSettings")
    if kind != "CsvFormatSettings":
        raise SegmentError(f"{source}: partition format {kind} is not supported (only CSV).")
    headers = settings.get("columnHeaders", False)
    if isinstance(headers, str) and headers.strip().lower() in ("true", "false"):
        headers = headers.strip().lower() == "true"
    if not isinstance(headers, bool):
        raise SegmentError(
            f'{source}: fileFormatSettings "columnHeaders" must be true or false, not {_json_type(headers)}.'
        )
    delimiter = settings.get("delimiter", ",")
    if delimiter not in (",", ";", "\t", "|"):
        raise SegmentError(f"{source}: delimiter {delimiter!r} is not supported.")
    quoted = settings.get("quoteStyle", "QuoteStyle.Csv") != "QuoteStyle.None"
    encoding = str(settings.get("encoding", "UTF-8")).lower().replace("_", "-")
    encoding = {"utf-8": "utf-8", "utf8": "utf-8", "ascii": "utf-8", "us-ascii": "utf-8"}.get(encoding, encoding)
    if encoding not in ("utf-8", "utf-16", "latin-1", "cp1252"):
        raise SegmentError(f"{source}: encoding {settings.get('encoding')!r} is not supported.")
    return CsvOptions(
        delimiter=delimiter,
        header=bool(headers),
        columns=attributes,
        encoding=encoding,
        quoted=quoted,
        skip_repeated_header=not headers,
    )


def partition_files(
    entity: Entity,
    folder: str,
    existing: set[str],
    to_blob: Callable[[str], tuple[str, str | None] | None],
    source: str,
) -> list[PartitionFile]:
    """The files to read: the entity's partitions (of its newest complete snapshot), or its folders'."""
    if entity.partitions:
        resolved: list[tuple[str, str | None, CsvOptions]] = []
        for partition in entity.partitions:
            target = to_blob(partition.location)
            if target is None:
                raise SegmentError(
                    f"{source}: partition '{partition.name}' is at {_without_query(partition.location)}, which is "
                    "not a blob in "
                    "the segments container of this storage account: refused."
                )
            resolved.append((target[0], target[1], csv_options(partition.format, entity.attributes, source)))
        groups = _by_snapshot([name for name, _, _ in resolved])
        chosen = _newest_complete(groups, existing, source)
        return [PartitionFile(name, snap, options) for name, snap, options in resolved if name in chosen]
    # No partitions listed: read the entity's own folder, newest snapshot first.
    prefix = f"{folder}{entity.name}/"
    files = sorted(n for n in existing if n.startswith(prefix) and n.lower().endswith(_DATA_SUFFIXES))
    if not files:
        raise SegmentError(f"{source}: entity '{entity.name}' lists no partitions and {prefix} holds no data files.")
    chosen = _newest_complete(_by_snapshot(files), existing, source)
    options = csv_options({}, entity.attributes, source)
    return [PartitionFile(name, None, options, listed=False) for name in files if name in chosen]


def _by_snapshot(names: list[str]) -> dict[tuple[int, ...], list[str]]:
    groups: dict[tuple[int, ...], list[str]] = {}
    for name in names:
        match = _SNAPSHOT.search(name)
        stamp = (int(match["y"]), int(match["m"]), int(match["d"]), int(match["hm"])) if match else ()
        groups.setdefault(stamp, []).append(name)
    return groups


def _newest_complete(groups: dict[tuple[int, ...], list[str]], existing: set[str], source: str) -> set[str]:
    if list(groups) == [()]:  # not in snapshot folders: every partition is needed
        missing = [n for n in groups[()] if n not in existing]
        if missing:
            raise SegmentError(f"{source}: partition {missing[0]} is missing from the segments container.")
        return set(groups[()])
    for stamp in sorted((s for s in groups if s), reverse=True):
        if all(name in existing for name in groups[stamp]):
            return set(groups[stamp])
    first_missing = next(n for names in groups.values() for n in names if n not in existing)
    raise SegmentError(f"{source}: no complete snapshot: partition {first_missing} is missing.")
