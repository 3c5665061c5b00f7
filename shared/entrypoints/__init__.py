"""The ways in: what each Functions trigger calls (``service``), the HTTP API (``http_api``), the
blob events that queue exports (``events``), and the CLI (``cli``, ``python -m shared``).

No Functions types here: ``function_app.py`` turns its bindings into plain values first.
"""
