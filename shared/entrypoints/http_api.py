"""The HTTP API, without the Functions framework: plain requests in, plain responses out.

``function_app.py`` turns a ``func.HttpRequest`` into an :class:`ApiRequest` and an
:class:`ApiResponse` back into a ``func.HttpResponse``; everything else is here, and testable
without a host. Errors are ``{"error": {"code", "message"}}`` and never echo a secret.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.adapters.jobs import OPTION_NAMES
from shared.entrypoints.service import enqueue_export
from shared.errors import ConfigError, ConsentError, ExportError, SettingsError, UnknownDestinationError
from shared.json_input import JsonDocumentError, JsonObject, load_json
from shared.names import NAME_PATTERN, RUN_ID_PATTERN
from shared.privacy import neutralise_lines, redact
from shared.run import verify
from shared.run.destinations import DestinationDisabledError, load_destinations
from shared.run.preflight import run_checks
from shared.run.queue_gate import RunRequest
from shared.run.records import CorruptRunRecord, ExportOptions, rejects_blob_name
from shared.run.runtime import Runtime

log = logging.getLogger(__name__)

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
MAX_PRINCIPAL_CHARS = 256
# A rejects file is returned whole from memory (the Python worker's HTTP binding cannot stream a
# body), so one larger than this is refused with a 413 that says where to get it instead.
MAX_REJECTS_HTTP_BYTES = 32 * 1024 * 1024
_WHOLE_NUMBER = re.compile(r"^[0-9]{1,9}\Z")


@dataclass(frozen=True)
class ApiRequest:
    method: str
    url: str
    route: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)


@dataclass
class ApiResponse:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    # Anything but JSON (the rejects CSV) carries its body as bytes, sent as they are.
    mimetype: str = "application/json"

    def json_bytes(self) -> bytes:
        return json.dumps(self.body).encode("utf-8")

    def body_bytes(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else self.json_bytes()


class BadRequest(Exception):
    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


def error(status: int, code: str, message: str) -> ApiResponse:
    return ApiResponse(status, {"error": {"code": code, "message": redact(message)}})


Handler = Callable[[Runtime, ApiRequest], ApiResponse]


def handle(handler: Handler, runtime_factory: Callable[[], Runtime], request: ApiRequest) -> ApiResponse:
    """Run a handler; every failure becomes a clear JSON error, never a traceback."""
    try:
        return handler(runtime_factory(), request)
    except BadRequest as exc:
        return error(400, exc.code, str(exc))
    except UnknownDestinationError as exc:
        return error(404, "destination_not_found", str(exc))
    except DestinationDisabledError as exc:
        return error(409, "destination_disabled", str(exc))
    except ConsentError as exc:
        return error(409, "consent_required", str(exc))
    except ConfigError as exc:
        if exc.destination is not None:
            return error(409, "destination_invalid", str(exc))
        return error(500, "configuration_error", str(exc))
    except SettingsError as exc:
        return error(500, "configuration_error", str(exc))
    except CorruptRunRecord as exc:
        return error(500, "run_record_corrupt", str(exc))
    except ExportError as exc:
        return error(503, "unavailable", str(exc))
    except Exception as exc:
        log.exception("unexpected error in %s", getattr(handler, "__name__", "handler"))
        return error(500, "internal_error", f"unexpected error ({type(exc).__name__}); see the app's logs.")


def _name(request: ApiRequest) -> str:
    name = request.route.get("name", "")
    if not NAME_PATTERN.match(name):
        raise BadRequest("invalid_name", "destination names match ^[a-z0-9][a-z0-9-]{0,62}$.")
    return name


def _options(body: bytes) -> ExportOptions:
    if not body.strip():
        return ExportOptions()
    try:
        data = load_json(body, "the body", max_depth=1, unique_keys=True)  # a flat object of options
    except JsonDocumentError as exc:
        raise BadRequest("invalid_body", f'{exc} It must be a flat JSON object, e.g. {{"dry_run": true}}.') from None
    if not isinstance(data, dict):
        raise BadRequest("invalid_body", 'the body must be a JSON object, e.g. {"dry_run": true}.')
    unknown = sorted(set(data) - set(OPTION_NAMES))
    if unknown:
        raise BadRequest("invalid_body", f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(OPTION_NAMES)}.")
    wrong = sorted(k for k, v in data.items() if not isinstance(v, bool))
    if wrong:
        raise BadRequest("invalid_body", f"{', '.join(wrong)} must be true or false.")
    return ExportOptions(**data)


def _limit(request: ApiRequest) -> int:
    raw = request.query.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    # Not str.isdigit(): it takes "²" and other digits int() refuses.
    if not _WHOLE_NUMBER.match(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest("invalid_limit", f"limit must be a whole number from 1 to {MAX_LIMIT}.")
    return int(raw)


def list_destinations(runtime: Runtime, request: ApiRequest) -> ApiResponse:
    config = load_destinations(runtime)
    out: list[JsonObject] = []
    for name in config.names():
        if name in config.invalid:
            out.append({"name": name, "error": str(config.invalid[name])})
            continue
        view = config.destinations[name].public_view()
        last = runtime.edges.records.recent(name, 1)
        view["last_run"] = _summary(last[0].to_dict()) if last else None
        out.append(view)
    return ApiResponse(200, {"destinations": out})


def start_export(runtime: Runtime, request: ApiRequest) -> ApiResponse:
    name = _name(request)
    options = _options(request.body)
    asked = RunRequest(name, "on_demand", _principal(runtime, request), options)
    record = enqueue_export(runtime, asked)
    # Relative, not built from the Host header: a caller chooses that header, and the link would
    # send whoever follows it (and their function key) to the caller's host.
    status_url = f"/api/destinations/{name}/exports/{record.run_id}"
    body = {"run_id": record.run_id, "status": record.status, "status_url": status_url}
    return ApiResponse(202, body, {"Location": status_url})


def _principal(runtime: Runtime, request: ApiRequest) -> str | None:
    """Who asked, when App Service authentication vouches for it; otherwise nobody is named.

    Without authentication, ``X-MS-CLIENT-PRINCIPAL-NAME`` is whatever a caller with a function
    key chose to send.
    """
    if not runtime.settings.app_service_auth:
        return None
    name = (request.header("X-MS-CLIENT-PRINCIPAL-NAME") or "").strip()
    return name[:MAX_PRINCIPAL_CHARS] or None


def list_exports(runtime: Runtime, request: ApiRequest) -> ApiResponse:
    name = _name(request)
    limit = _limit(request)
    load_destinations(runtime).get(name)
    return ApiResponse(200, {"runs": [r.to_dict() for r in runtime.edges.records.recent(name, limit)]})


def _run_id(request: ApiRequest) -> str:
    run_id = request.route.get("run_id", "")
    if not RUN_ID_PATTERN.match(run_id):
        raise BadRequest("invalid_run_id", "run ids look like 20261123T031500Z-1a2b3c4d.")
    return run_id


def get_export(runtime: Runtime, request: ApiRequest) -> ApiResponse:
    name = _name(request)
    run_id = _run_id(request)
    record = runtime.edges.records.load(name, run_id)
    if record is None:
        return error(404, "run_not_found", f"no run {run_id} of destination '{name}'.")
    return ApiResponse(200, record.to_dict())


def get_rejects(runtime: Runtime, request: ApiRequest) -> ApiResponse:
    """The run's rejects CSV (source, line, email, category, field, reason), as written."""
    name = _name(request)
    run_id = _run_id(request)
    blob = rejects_blob_name(name, run_id)
    # The size comes from the listing, so a file too large is refused before any of it is read.
    found = [b for b in runtime.edges.exports.list_blobs(blob) if b.name == blob]
    if not found:
        if runtime.edges.records.load(name, run_id) is None:
            return error(404, "run_not_found", f"no run {run_id} of destination '{name}'.")
        why = f"run {run_id} of destination '{name}' rejected no rows: it has no rejects file."
        return error(404, "rejects_not_found", why)
    if found[0].size > MAX_REJECTS_HTTP_BYTES:
        return error(
            413,
            "rejects_too_large",
            f"the rejects file {blob} is {found[0].size} bytes, over the {MAX_REJECTS_HTTP_BYTES} this API returns; "
            f"get it with 'python -m shared rejects {name} {run_id}', which streams it, or from the "
            f"{runtime.settings.exports_container} container.",
        )
    # Neutralised on the way out as on the way in: a stored file may predate that, or be edited.
    # Read at the version whose size was checked: one replaced since fails (BlobChanged, a 503).
    data = b"".join(neutralise_lines(runtime.edges.exports.iter_chunks(blob, etag=found[0].etag)))
    headers = {
        "Content-Disposition": f'attachment; filename="{name}-{run_id}.rejects.csv"',
        # The cells are source data: never let a browser sniff them into something it runs.
        "X-Content-Type-Options": "nosniff",
    }
    return ApiResponse(200, data, headers, mimetype="text/csv")


def check_destination(runtime: Runtime, request: ApiRequest) -> ApiResponse:
    name = _name(request)
    checks = run_checks(runtime, name)
    return ApiResponse(200, {"ok": all(c.ok for c in checks), "checks": [c.as_dict() for c in checks]})


def verify_destination(runtime: Runtime, request: ApiRequest) -> ApiResponse:
    """The list's members against the sync state and the segment: counts (the addresses are in
    the CSV the answer names, in storage). Body: optional ``{"repair": true}``."""
    name = _name(request)
    body = request.body
    repair = False
    if body.strip():
        try:
            data = load_json(body, "the body", max_depth=1)
        except JsonDocumentError as exc:
            raise BadRequest("invalid_body", f'{exc} It must be a flat JSON object, e.g. {{"repair": true}}.') from None
        if not isinstance(data, dict) or set(data) - {"repair"} or not isinstance(data.get("repair", False), bool):
            raise BadRequest("invalid_body", 'the body must be {"repair": true} or {"repair": false}.')
        repair = bool(data.get("repair", False))
    return ApiResponse(200, verify.verify_destination(runtime, name, repair=repair))


def _summary(record: JsonObject) -> JsonObject:
    keys = ("run_id", "trigger", "status", "queued_at", "started_at", "finished_at", "counts")
    return {k: record.get(k) for k in keys}
