"""What a run reads: ``destinations.json``, the segment blobs (CSV, JSON Lines, CDM folders), the
mapping of their columns, and the row rules that make one row a SendGrid contact or a reject.

Pure parsing over a :class:`~shared.adapters.storage.BlobStore`: no SendGrid, no run state.
"""
