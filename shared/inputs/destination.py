"""What a destination is: the SendGrid lists it fills, the segments it reads and how, and the
run's limits. Built from ``destinations.json`` by :mod:`shared.inputs.config`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.errors import ConfigError, ConsentError, UnknownDestinationError
from shared.json_input import JsonObject

REGION_BASE_URLS = {"global": "https://api.sendgrid.com", "eu": "https://api.eu.sendgrid.com"}
CSV_DELIMITERS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class ListRef:
    id: str | None = None
    name: str | None = None
    create_if_missing: bool = False

    def describe(self) -> str:
        return f"list id '{self.id}'" if self.id else f"list named '{self.name}'"


@dataclass(frozen=True)
class CsvOptions:
    delimiter: str | None = None
    header: bool = True
    columns: tuple[str, ...] | None = None
    encoding: str = "utf-8"
    quoted: bool = True  # False: quotes are plain characters (CDM QuoteStyle.None)
    skip_repeated_header: bool = False  # headerless CDM partitions: a first row of the column names is skipped


@dataclass(frozen=True)
class SegmentRef:
    path: str
    table: str | None = None
    csv: CsvOptions = field(default_factory=CsvOptions)

    @property
    def is_prefix(self) -> bool:
        return self.path.endswith("/")


@dataclass(frozen=True)
class FieldMapping:
    """SendGrid reserved field -> source column, and custom field name -> source column."""

    fields: Mapping[str, str]
    custom_fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Destination:
    name: str
    display_name: str
    enabled: bool
    data_privacy_consent: bool
    api_key_secret: str
    region: str
    lists: tuple[ListRef, ...]
    segments: tuple[SegmentRef, ...]
    mapping: FieldMapping | None
    mode: str
    max_profiles: int
    max_removal_fraction: float
    schedule_enabled: bool
    on_new_data: bool = False  # export when a segment blob lands (Event Grid), see shared.entrypoints.events

    def require_consent(self) -> None:
        if not self.data_privacy_consent:
            raise ConsentError(
                f"destination '{self.name}' has not given data_privacy_consent: set "
                '"data_privacy_consent": true in destinations.json to confirm that sending '
                "these profiles to SendGrid is allowed. Nothing was sent."
            )

    def api_base_url(self, override: str | None) -> str:
        return override or REGION_BASE_URLS[self.region]

    def public_view(self) -> JsonObject:
        """What may be shown to a caller: the configuration, never a secret's value."""
        return {
            "name": self.name,
            "display_name": self.display_name,
            "enabled": self.enabled,
            "data_privacy_consent": self.data_privacy_consent,
            "region": self.region,
            "lists": [{k: v for k, v in vars(ref).items() if v is not None} for ref in self.lists],
            "segments": [s.path for s in self.segments],
            "mode": self.mode,
            "max_profiles": self.max_profiles,
            "schedule_enabled": self.schedule_enabled,
            "on_new_data": self.on_new_data,
        }


@dataclass(frozen=True)
class DestinationsConfig:
    destinations: Mapping[str, Destination]
    invalid: Mapping[str, ConfigError]

    def get(self, name: str) -> Destination:
        if name in self.invalid:
            raise self.invalid[name]
        try:
            return self.destinations[name]
        except KeyError:
            known = ", ".join(sorted([*self.destinations, *self.invalid])) or "none"
            raise UnknownDestinationError(
                f"no destination named '{name}' in destinations.json (configured: {known})."
            ) from None

    def names(self) -> list[str]:
        return sorted([*self.destinations, *self.invalid])
