"""Sending: contacts into batches, batches to SendGrid at a pace, its import jobs followed and
settled, a stopped run's jobs resumed, and mirror-mode removals. It may read the delta engine
(:mod:`shared.run.delta`); the delta engine never reads it."""

from shared.run.send.batching import BatchSpool, ContactNotEncodable, ContactTooLarge, encode_contact
from shared.run.send.pace import UPSERT, PaceBudget
from shared.run.send.removals import RemovalRules, remove_departed
from shared.run.send.resume import settle_left_jobs
from shared.run.send.sending import BatchSender, SendOutcome, batch_entry, release_when_ready
from shared.run.send.settling import JobSettler, contact_cap_message

__all__ = [
    "UPSERT",
    "BatchSender",
    "BatchSpool",
    "ContactNotEncodable",
    "ContactTooLarge",
    "JobSettler",
    "PaceBudget",
    "RemovalRules",
    "SendOutcome",
    "batch_entry",
    "contact_cap_message",
    "encode_contact",
    "release_when_ready",
    "remove_departed",
    "settle_left_jobs",
]
