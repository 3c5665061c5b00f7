"""Each trigger hands the worker's invocation context to the core: threads the core starts through
shared.context.propagate log to that invocation and stay in the host's trace."""

from __future__ import annotations

import threading
from typing import Any

import azure.functions as func
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest
from opentelemetry import trace

from shared.context import current_invocation_id, propagate
from shared.entrypoints import service
from tests.integration.test_function_app import functions_by_name
from tests.integration.worker_context import STORAGE, WorkerContext

HOST_TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C  # WorkerContext's traceparent


def seen() -> tuple[Any, ...]:
    return (
        current_invocation_id(),
        getattr(STORAGE, "invocation_id", None),
        trace.get_current_span().get_span_context().trace_id,
    )


def capture(monkeypatch, core: str) -> list[tuple[Any, ...]]:
    """Replace a core entry point by one that records what it and a thread it starts see."""
    found: list[tuple[Any, ...]] = []

    def record() -> None:
        found.append(seen())

    def fake(*args: Any, **kwargs: Any) -> list[Any]:
        found.append(seen())
        thread = threading.Thread(target=propagate(record))
        thread.start()
        thread.join()
        return []

    monkeypatch.setattr(service, core, fake)
    monkeypatch.setattr(service, "app_runtime", lambda: None)
    return found


def test_the_queue_worker_runs_the_export_under_its_invocation(monkeypatch):
    found = capture(monkeypatch, "on_job")
    context = WorkerContext("export_worker")
    functions_by_name()["export_worker"].get_user_function()(QueueMessage(body=b"{}", dequeue_count=1), context)
    expected = (context.invocation_id, context.invocation_id, HOST_TRACE_ID)
    assert found[1] == expected  # the thread the core started
    assert found[0][0] == context.invocation_id and found[0][2] == HOST_TRACE_ID
    assert seen() == (None, None, 0)  # nothing stays behind on the worker's thread


def test_the_timer_and_the_event_trigger_hand_over_their_invocation_too(monkeypatch):
    on_schedule = capture(monkeypatch, "on_schedule")
    timer = WorkerContext("scheduled_export")
    functions_by_name()["scheduled_export"].get_user_function()(TimerRequest(past_due=False), timer)
    assert on_schedule[1][:2] == (timer.invocation_id, timer.invocation_id)

    on_blob = capture(monkeypatch, "on_blob_created")
    landed = WorkerContext("segment_landed")
    event = func.EventGridEvent(
        id="e1",
        data={},
        topic="t",
        subject="s",
        event_type="Microsoft.Storage.BlobCreated",
        event_time=None,
        data_version="1",
    )
    functions_by_name()["segment_landed"].get_user_function()(event, landed)
    assert on_blob[1][:2] == (landed.invocation_id, landed.invocation_id)
