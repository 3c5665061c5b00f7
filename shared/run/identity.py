"""Who a contact is and what a row said: the one recipe for each.

A contact's key is BLAKE2b of its email; a row's fingerprint is BLAKE2b of its text, salted with
everything else that shapes what is sent (see :mod:`shared.run.sync_state`).
"""

from __future__ import annotations

import hashlib

# Bump when the row rules change what a row maps to: every fingerprint then differs, and the
# next run sends everyone once with the new rules.
RULES_VERSION = b"rules-2"

# A contact's key: BLAKE2b of its email (the state and mirror removals depend on this exact recipe).
EMAIL_KEY_HASH = hashlib.blake2b(digest_size=8)


def email_key(email: str) -> int:
    hashed = EMAIL_KEY_HASH.copy()
    hashed.update(email.encode("utf-8", "surrogateescape"))
    return int.from_bytes(hashed.digest(), "little")


class RowFingerprinter:
    """Fingerprints of source rows under one payload-shaping context (see the module doc)."""

    def __init__(self, *context: str | bytes):
        seed = hashlib.blake2b(RULES_VERSION, digest_size=32)
        for part in context:
            seed.update(b"\x00" + (part.encode("utf-8", "surrogateescape") if isinstance(part, str) else part))
        self._proto = hashlib.blake2b(seed.digest(), digest_size=8)

    def __call__(self, record: str) -> int:
        return self.many([record])[0][0]

    def many(self, records: list[str]) -> tuple[list[int], set[int]]:
        """Fingerprints of the records, and the indexes of those holding undecodable bytes."""
        copy, from_bytes = self._proto.copy, int.from_bytes
        out = []
        undecodable: set[int] = set()
        for index, record in enumerate(records):
            try:
                data = record.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates: bytes the reader could not decode
                data = record.encode("utf-8", "surrogateescape")
                undecodable.add(index)
            h = copy()
            h.update(data)
            out.append(from_bytes(h.digest(), "little"))
        return out, undecodable
