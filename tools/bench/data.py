"""The bench's input: N fictitious profiles (eight mapped fields, realistic lengths) as
Customer-Insights-style partitions in the storage emulator, and the variants a delta reads."""

from __future__ import annotations

import random
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from azure.storage.blob import BlobServiceClient

ROWS_PER_FILE = 250_000
FIRST = [
    "Ada",
    "Bruno",
    "Chloé",
    "Dmitri",
    "Elif",
    "Farah",
    "Gustav",
    "Hana",
    "Ivo",
    "Jonas",
    "Kaia",
    "Luca",
    "María José",
    "Nuno",
    "Olga",
    "Priya",
    "Quinn",
    "Rafael",
    "Sofía",
    "Tariq",
    "Uma",
    "Viktor",
    "Wen",
    "Zoë",
]
LAST = [
    "Andersen",
    "Bianchi",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "García López",
    "Horvat",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Oliveira",
    "Petrov",
    "Rossi",
    "Van der Berg",
]
PLACES = [
    ("Lisbon", "Lisboa", "Portugal", "1100-148"),
    ("Lyon", "Auvergne-Rhône-Alpes", "France", "69002"),
    ("Malmö", "Skåne", "Sweden", "211 22"),
    ("Austin", "Texas", "United States", "78701"),
    ("Osaka", "Osaka", "Japan", "530-0001"),
    ("Cork", "Munster", "Ireland", "T12 X2E8"),
    ("São Paulo", "São Paulo", "Brazil", "01310-100"),
    ("Toronto", "Ontario", "Canada", "M5H 2N2"),
]
HEADER = "CustomerId,PrimaryEmail,FirstName,LastName,City,StateOrProvince,Country,PostalCode\r\n"


def profile(i: int, version: int = 0) -> str:
    rng = random.Random(i)
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city, state, country, postal = rng.choice(PLACES)
    if version:
        city = f"{city} {version}"
    local = unicodedata.normalize("NFKD", first.split()[0].lower()).encode("ascii", "ignore").decode()
    email = f"{local}.{i}@{rng.choice(['example.com', 'example.org', 'example.net'])}"
    return f'C{i:08d},{email},{first},"{last}",{city},{state},{country},{postal}\r\n'


@dataclass(frozen=True)
class Variant:
    """How an export's input differs from the first one's."""

    changed: frozenset[int] = frozenset()  # rows whose city changed
    churn: bool = False  # a day's churn: 0.5% changed, 0.25% new contacts among them, 0.25% gone
    reversed: bool = False  # each partition's rows in the opposite order: none where it was


def rows_of(start: int, stop: int, n: int, variant: Variant) -> Iterator[str]:
    ids = range(stop - 1, start - 1, -1) if variant.reversed else range(start, stop)
    churn = variant.churn
    for i in ids:
        if churn and i % 400 == 123:
            continue  # left the segment
        yield profile(i, 1 if i in variant.changed else 2 if churn and i % 200 == 55 else 0)
        if churn and i % 400 == 7:
            yield profile(n + i)  # a new contact, in the middle of the others


def partition(start: int, stop: int, n: int, variant: Variant) -> Iterator[bytes]:
    yield HEADER.encode()
    buffer: list[str] = []
    for row in rows_of(start, stop, n, variant):
        buffer.append(row)
        if len(buffer) == 10_000:
            yield "".join(buffer).encode()
            buffer = []
    if buffer:
        yield "".join(buffer).encode()


def upload(service: BlobServiceClient, n: int, variant: Variant = Variant(), prefix: str = "bench") -> float:
    started = time.monotonic()
    container = service.get_container_client("segments")
    for index, start in enumerate(range(0, n, ROWS_PER_FILE)):
        data = b"".join(partition(start, min(n, start + ROWS_PER_FILE), n, variant))
        container.upload_blob(f"{prefix}/Profiles_{index + 1}.csv", data, overwrite=True, max_concurrency=2)
    return time.monotonic() - started
