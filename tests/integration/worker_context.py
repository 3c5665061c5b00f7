"""What the Python worker hands a function that takes ``context``: an invocation id, the one
thread-local storage it reads the invocation id from in each thread, and the host's trace."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field


class WorkerStorage(threading.local):
    pass


# The worker has one for the whole process (its dispatcher's _invocation_id_local).
STORAGE = WorkerStorage()


@dataclass(frozen=True)
class TraceContext:
    trace_parent: str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    trace_state: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerContext:
    function_name: str
    invocation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    thread_local_storage: WorkerStorage = STORAGE
    trace_context: TraceContext = field(default_factory=TraceContext)
    function_directory: str = "."
