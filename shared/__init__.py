"""The export core: reads segment blobs, sends contacts to SendGrid, records every run.

Nothing in this package imports ``azure.functions``: the Functions triggers, the CLI and the
tests all drive it through :mod:`shared.run.export` and :mod:`shared.bootstrap`.
"""
