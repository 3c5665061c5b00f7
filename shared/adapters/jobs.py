"""Export jobs on a Storage queue: what the timer and the HTTP API enqueue, and the worker runs.

Messages are base64-encoded text, as the Functions queue trigger expects by default.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from shared.errors import ExportError, SettingsError
from shared.json_input import JsonDocumentError, load_json
from shared.names import NAME_PATTERN, RUN_ID_PATTERN
from shared.settings import StorageSettings

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

# A job is a few hundred characters; a queue message can hold 64 KiB.
MAX_MESSAGE_CHARS = 16_384
TRIGGERS = ("schedule", "on_demand", "cli", "on_new_data")
OPTION_NAMES = ("dry_run", "full", "force_removals")


class MalformedJob(ExportError):
    pass


@dataclass(frozen=True)
class ExportJob:
    run_id: str
    destination: str
    trigger: str
    requested_by: str | None
    options: dict[str, bool]

    def to_json(self) -> str:
        return json.dumps(
            {
                "run_id": self.run_id,
                "destination": self.destination,
                "trigger": self.trigger,
                "requested_by": self.requested_by,
                "options": self.options,
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ExportJob:
        if len(text) > MAX_MESSAGE_CHARS:
            raise MalformedJob(f"the message is over {MAX_MESSAGE_CHARS} characters")
        try:
            data: Any = load_json(text, "the message")
        except JsonDocumentError as exc:
            raise MalformedJob(str(exc)) from None
        if not isinstance(data, dict):
            raise MalformedJob("the message is not a JSON object")
        run_id, destination = data.get("run_id"), data.get("destination")
        if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
            raise MalformedJob("run_id is missing or malformed")
        if not isinstance(destination, str) or not NAME_PATTERN.match(destination):
            raise MalformedJob("destination is missing or malformed")
        trigger = data.get("trigger")
        if trigger not in TRIGGERS:
            raise MalformedJob(f"trigger must be one of {', '.join(TRIGGERS)}")
        options = data.get("options") or {}
        if (
            not isinstance(options, dict)
            or set(options) - set(OPTION_NAMES)
            or not all(isinstance(v, bool) for v in options.values())
        ):
            raise MalformedJob("options must be an object of dry_run, full, force_removals booleans")
        requested_by = data.get("requested_by")
        if requested_by is not None and not isinstance(requested_by, str):
            raise MalformedJob("requested_by must be a string")
        return cls(run_id, destination, trigger, requested_by, {k: bool(options.get(k, False)) for k in OPTION_NAMES})


class JobQueue(Protocol):
    def enqueue(self, job: ExportJob, *, delay: int = 0) -> None:
        """Put the job on the queue; it becomes visible to the worker after ``delay`` seconds."""
        ...


class AzureJobQueue:
    """The job queue, its client built when first used: a run that only exports (the CLI, the
    worker) never loads the queue SDK."""

    def __init__(self, connect: Callable[[], QueueClient]):
        self._connect = connect
        self._client: QueueClient | None = None

    def enqueue(self, job: ExportJob, *, delay: int = 0) -> None:
        if self._client is None:
            self._client = self._connect()
        # The initial invisibility is the delay: the message waits on the queue, not in a process.
        visibility = delay or None
        try:
            self._client.send_message(job.to_json(), visibility_timeout=visibility)
        except ResourceNotFoundError:
            # Deployments create the queue; a fresh local emulator may not have it yet.
            with contextlib.suppress(ResourceExistsError):
                self._client.create_queue()
            self._client.send_message(job.to_json(), visibility_timeout=visibility)


def queue_client(storage: StorageSettings, queue_name: str, credential: Any | None = None) -> QueueClient:
    """The one place the job QueueClient is built, encoding as the Functions trigger decodes."""
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

    encode, decode = TextBase64EncodePolicy(), TextBase64DecodePolicy()
    if storage.connection_string:
        return QueueClient.from_connection_string(
            storage.connection_string, queue_name, message_encode_policy=encode, message_decode_policy=decode
        )
    if not storage.queue_service_uri:
        raise SettingsError(
            f"{storage.setting_name}__queueServiceUri is required for the job queue with identity-based storage."
        )
    return QueueClient(
        storage.queue_service_uri,
        queue_name,
        credential=credential,
        message_encode_policy=encode,
        message_decode_policy=decode,
    )
