"""The edges to the outside, each behind a small interface: Blob Storage, the Storage queue, the
blob-lease lock, Key Vault, and the SendGrid client with its retry policy.

Where the Azure Storage and Key Vault SDKs and ``requests`` are called (``bootstrap`` only builds
credentials; ``run.telemetry`` configures Azure Monitor); they know nothing of runs.
"""
