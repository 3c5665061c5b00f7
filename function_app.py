"""Azure Functions entry points. Thin on purpose: each trigger reads its input, hands it to one
core function (``shared.entrypoints.service`` or ``shared.entrypoints.http_api``), and maps the outcome to its binding.
No export logic lives here, and no export ever runs inside an HTTP request.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import azure.functions as func
from opentelemetry import context as otel_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared import privacy
from shared.context import invocation
from shared.entrypoints import http_api, service
from shared.run import telemetry

# In Azure (APPLICATIONINSIGHTS_CONNECTION_STRING set), logs, the run event and metrics go to
# Application Insights through OpenTelemetry: host.json "telemetryMode": "OpenTelemetry", the distro
# configured here, and PYTHON_ENABLE_OPENTELEMETRY=true so the host lets the worker stream them and
# sends no second copy ("Use OpenTelemetry with Azure Functions", learn.microsoft.com/azure/
# azure-functions/opentelemetry-howto, Python). Locally and in tests nothing is configured or sent.
telemetry.configure_azure_monitor()
# The worker has put its handler (the one that forwards to the host) on the root logger before it
# imports this module, and the line above adds OpenTelemetry's: redact on every way out.
privacy.install_redacting_filter(logging.getLogger())

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@contextmanager
def _invocation(context: func.Context) -> Iterator[None]:
    """Run under the invocation: the threads the core starts log to it (shared.context), and the
    run event and logs join the host's trace of this execution."""
    trace = context.trace_context
    carrier = {"traceparent": trace.trace_parent or "", "tracestate": trace.trace_state or ""}
    token = otel_context.attach(TraceContextTextMapPropagator().extract(carrier))
    try:
        with invocation(context.invocation_id, context.thread_local_storage):
            yield
    finally:
        otel_context.detach(token)


def _http(handler: http_api.Handler, req: func.HttpRequest) -> func.HttpResponse:
    request = http_api.ApiRequest(
        method=req.method,
        url=req.url,
        route=dict(req.route_params),
        query=dict(req.params),
        headers=dict(req.headers),
        body=req.get_body() or b"",
    )
    response = http_api.handle(handler, service.app_runtime, request)
    return func.HttpResponse(
        response.body_bytes(), status_code=response.status, headers=response.headers, mimetype=response.mimetype
    )


@app.timer_trigger(arg_name="timer", schedule="%EXPORT_SCHEDULE%", run_on_startup=False, use_monitor=True)
def scheduled_export(timer: func.TimerRequest, context: func.Context) -> None:
    with _invocation(context):
        queued = service.on_schedule(service.app_runtime(), past_due=timer.past_due)
        logging.info("schedule: queued %d export(s)", len(queued))


@app.queue_trigger(arg_name="msg", queue_name="%EXPORT_QUEUE%", connection="AzureWebJobsStorage")
def export_worker(msg: func.QueueMessage, context: func.Context) -> None:
    with _invocation(context):
        service.on_job(service.app_runtime(), msg.get_body(), dequeue_count=msg.dequeue_count or 1)


@app.event_grid_trigger(arg_name="event")
def segment_landed(event: func.EventGridEvent, context: func.Context) -> None:
    # Event Grid delivers BlobCreated events of the segments container here (see README, "Export
    # when new data lands"); the core queues the exports that follow that data.
    try:
        data = event.get_json()
    except ValueError:
        data = None
    with _invocation(context):
        queued = service.on_blob_created(
            service.app_runtime(),
            {"id": event.id, "eventType": event.event_type, "subject": event.subject, "data": data},
        )
        logging.info("new data: queued %d export(s)", len(queued))


@app.route(route="destinations", methods=["GET"])
def list_destinations(req: func.HttpRequest) -> func.HttpResponse:
    return _http(http_api.list_destinations, req)


@app.route(route="destinations/{name}/exports", methods=["POST"])
def start_export(req: func.HttpRequest) -> func.HttpResponse:
    return _http(http_api.start_export, req)


@app.route(route="destinations/{name}/exports", methods=["GET"])
def list_exports(req: func.HttpRequest) -> func.HttpResponse:
    return _http(http_api.list_exports, req)


@app.route(route="destinations/{name}/exports/{run_id}", methods=["GET"])
def get_export(req: func.HttpRequest) -> func.HttpResponse:
    return _http(http_api.get_export, req)


@app.route(route="destinations/{name}/exports/{run_id}/rejects", methods=["GET"])
def get_rejects(req: func.HttpRequest) -> func.HttpResponse:
    return _http(http_api.get_rejects, req)


@app.route(route="destinations/{name}/check", methods=["POST"])
def check_destination(req: func.HttpRequest) -> func.HttpResponse:
    return _http(http_api.check_destination, req)


@app.route(route="destinations/{name}/verify", methods=["POST"])
def verify_destination(req: func.HttpRequest) -> func.HttpResponse:
    return _http(http_api.verify_destination, req)


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    # A bare liveness probe: it reads nothing and says nothing about the configuration.
    return func.HttpResponse('{"status": "ok"}', status_code=200, mimetype="application/json")
