"""Who a contact is and what a row said: the one recipe for each.

A contact's key is BLAKE2b of its email; a row's fingerprint is XXH3 (64 bits) of its text, seeded
with BLAKE2b of everything else that shapes what is sent (see :mod:`shared.run.delta.sync_state`).

Why two hashes. The key is made for the few rows a run parses; it names a contact in the state and
in mirror removals, so it never changes. The fingerprint is made for every row of every run, and
is what a delta run mostly is: BLAKE2b took a Python loop of five calls a row (0.5 to 0.7 us),
XXH3 one C call inside ``map`` (under 0.1 us). A fingerprint only has to tell a changed row from
the one SendGrid took (64 bits: a chance in 2**64 a change goes unseen), not resist someone who
writes the segment files, who can send whatever they like anyway.
"""

from __future__ import annotations

import hashlib
from itertools import repeat

from xxhash import xxh3_64_intdigest

# Bump when the row rules change what a row maps to: every fingerprint then differs, and the
# next run sends everyone once with the new rules. (rules-3: the fingerprint became XXH3.)
RULES_VERSION = b"rules-3"

# A contact's key: BLAKE2b of its email (the state and mirror removals depend on this exact recipe).
EMAIL_KEY_HASH = hashlib.blake2b(digest_size=8)


def email_key(email: str) -> int:
    hashed = EMAIL_KEY_HASH.copy()
    hashed.update(email.encode("utf-8", "surrogateescape"))
    return int.from_bytes(hashed.digest(), "little")


class RowFingerprinter:
    """Fingerprints of source rows under one payload-shaping context (see the module doc)."""

    def __init__(self, *context: str | bytes):
        seed = hashlib.blake2b(RULES_VERSION, digest_size=8)
        for part in context:
            seed.update(b"\x00" + (part.encode("utf-8", "surrogateescape") if isinstance(part, str) else part))
        self._seed = int.from_bytes(seed.digest(), "little")

    def __call__(self, record: str) -> int:
        return self.many([record])[0][0]

    def many(self, records: list[str]) -> tuple[list[int], set[int]]:
        """Fingerprints of the records, and the indexes of those holding undecodable bytes."""
        try:
            # Two C loops over the chunk: the usual chunk has no Python step a row.
            return list(map(xxh3_64_intdigest, map(str.encode, records), repeat(self._seed))), set()
        except UnicodeEncodeError:  # lone surrogates: bytes the reader could not decode
            pass
        out = []
        undecodable: set[int] = set()
        for index, record in enumerate(records):
            try:
                data = record.encode("utf-8")
            except UnicodeEncodeError:
                data = record.encode("utf-8", "surrogateescape")
                undecodable.add(index)
            out.append(xxh3_64_intdigest(data, self._seed))
        return out, undecodable
