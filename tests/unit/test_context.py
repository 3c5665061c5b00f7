"""Threads the run starts carry the invocation id (for the worker's log routing) and the
OpenTelemetry context (for correlation); pooled threads give both back."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from shared.context import current_invocation_id, invocation, propagate

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C


class WorkerStorage(threading.local):
    """What the worker hands over as ``context.thread_local_storage``: one per process."""


def seen(storage: WorkerStorage) -> tuple[str | None, str | None, int]:
    span = trace.get_current_span().get_span_context()
    return getattr(storage, "invocation_id", None), current_invocation_id(), span.trace_id


def in_trace():
    parent = SpanContext(TRACE_ID, 0x00F067AA0BA902B7, is_remote=True, trace_flags=TraceFlags(1))
    return otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))


def test_a_plain_thread_loses_the_invocation_and_a_propagated_one_keeps_it():
    storage = WorkerStorage()
    results: dict[str, tuple] = {}
    token = in_trace()

    def record_bound() -> None:
        results.update(bound=seen(storage))

    try:
        with invocation("inv-1", storage):
            plain = threading.Thread(target=lambda: results.update(plain=seen(storage)))
            bound = threading.Thread(target=propagate(record_bound))
            for thread in (plain, bound):
                thread.start()
                thread.join()
    finally:
        otel_context.detach(token)
    assert results["plain"] == (None, None, 0)
    assert results["bound"] == ("inv-1", "inv-1", TRACE_ID)


def test_pooled_threads_get_each_call_the_invocation_and_give_it_back():
    storage = WorkerStorage()
    with ThreadPoolExecutor(max_workers=2) as pool:
        with invocation("inv-1", storage):
            first = [pool.submit(propagate(seen), storage).result() for _ in range(4)]
        with invocation("inv-2", storage):
            second = list(pool.map(propagate(seen), [storage] * 4))
        after = pool.submit(seen, storage).result()
    assert {s[0] for s in first} == {"inv-1"} and {s[0] for s in second} == {"inv-2"}
    assert after == (None, None, 0)  # nothing left behind on the pool's threads


def test_outside_functions_propagate_just_runs_the_target():
    assert current_invocation_id() is None
    result: list[int] = []
    thread = threading.Thread(target=propagate(result.append), args=(7,))
    thread.start()
    thread.join()
    assert result == [7]


def test_the_invocation_ends_with_its_block_and_errors_still_reach_the_caller():
    storage = WorkerStorage()
    with invocation("inv-1", storage):
        assert current_invocation_id() == "inv-1"
    assert current_invocation_id() is None

    def boom() -> None:
        raise ValueError("from the thread")

    with invocation("inv-1", storage), ThreadPoolExecutor(max_workers=1) as pool:
        error = pool.submit(propagate(boom)).exception()
    assert isinstance(error, ValueError)
