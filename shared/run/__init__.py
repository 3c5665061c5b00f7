"""One export run: its stages in order, and the state it reads and writes.

Imports inputs and adapters, never an entry point. The ports it needs (storage, Key Vault,
SendGrid, the lock, the queue) are Protocols here, built once in :mod:`shared.bootstrap`; tests
hand it fakes or the local stand-ins.
"""
