"""Carrying a run's context into the threads it starts.

A thread starts with an empty context, so two things a Functions invocation sets on its own thread
are missing in the run's sender thread, its send pool and its scan thread:

- the invocation id. The Python worker attaches a log line to its invocation through
  ``context.thread_local_storage.invocation_id``, which it sets only on the thread it runs the
  function on; a line logged from any other thread is dropped unless that thread sets it too (the
  worker's own thread tests do ``context.thread_local_storage.invocation_id =
  context.invocation_id`` first thing in each thread: Azure/azure-functions-python-worker,
  tests/unittests/http_functions/*thread*). The storage is one ``threading.local`` shared by all
  invocations, so a pooled thread must put back what it found.
- the OpenTelemetry context (the host's trace, which ties logs and the run event to the function
  execution): OpenTelemetry keeps it in a ``contextvars.ContextVar``, and a new thread does not
  inherit context variables.

:func:`invocation` is entered by ``function_app.py`` around each function; :func:`propagate` wraps
a thread's target (or a callable handed to a pool) where the thread is made. The core stays free
of the Functions framework: the worker's storage is any object with an ``invocation_id``
attribute. Outside Functions (the CLI, tests) there is no invocation and :func:`propagate` only
carries the context variables.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Invocation:
    invocation_id: str
    storage: Any  # the worker's context.thread_local_storage: a threading.local it reads in each thread


_current: contextvars.ContextVar[Invocation | None] = contextvars.ContextVar("shared_invocation", default=None)


@contextmanager
def invocation(invocation_id: str, storage: Any) -> Iterator[None]:
    """The calling thread runs ``invocation_id``: threads made under it through
    :func:`propagate` log to that invocation."""
    token = _current.set(Invocation(invocation_id, storage))
    try:
        yield
    finally:
        # The worker runs functions on a pool: the next function on this thread must not inherit it.
        _current.reset(token)


def current_invocation_id() -> str | None:
    found = _current.get()
    return found.invocation_id if found else None


def propagate(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn``, to run on another thread with the context of the thread that calls this."""
    captured = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        # A copy per call: one Context cannot be entered by two threads at once, and a pool may
        # run the same wrapped callable on several.
        return captured.copy().run(_within_invocation, functools.partial(fn, *args, **kwargs))

    return run


def _within_invocation(call: Callable[[], R]) -> R:
    found = _current.get()
    if found is None:
        return call()
    missing = object()
    before = getattr(found.storage, "invocation_id", missing)
    found.storage.invocation_id = found.invocation_id
    try:
        return call()
    finally:
        # Pooled threads outlive the call: leave the storage as this thread had it.
        if before is missing:
            del found.storage.invocation_id
        else:
            found.storage.invocation_id = before
