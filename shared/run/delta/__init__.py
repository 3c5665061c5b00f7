"""The delta engine: what a run already sent, and so which rows of this read are unchanged.

It imports nothing of sending (a contract in pyproject.toml says so). How a delta finds its
unchanged rows, and why each piece is there: DESIGN.md beside this file.
"""

from shared.run.delta.identity import RowFingerprinter, email_key
from shared.run.delta.journal import StateUpdates, journal_prefix
from shared.run.delta.keysets import MISSING, KeySet
from shared.run.delta.matching import InPlace, KnownRows
from shared.run.delta.run_keys import RunKeys, departed_indexes
from shared.run.delta.run_order import RunOrder
from shared.run.delta.sync_state import SyncState

__all__ = [
    "MISSING",
    "InPlace",
    "KeySet",
    "KnownRows",
    "RowFingerprinter",
    "RunKeys",
    "RunOrder",
    "StateUpdates",
    "SyncState",
    "departed_indexes",
    "email_key",
    "journal_prefix",
]
