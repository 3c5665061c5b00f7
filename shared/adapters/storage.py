"""Blob Storage behind a small interface, so the core never touches the SDK directly.

:class:`BlobStore` is what the core needs of one container. :class:`AzureBlobStore` is the real
one; tests hand the core an in-memory fake for unit tests and Azurite for integration tests.
"""

from __future__ import annotations

import contextlib
import io
import queue
import threading
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol
from urllib.parse import urlparse

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient, ContentSettings, ExponentialRetry

from shared.context import propagate
from shared.errors import ExportError
from shared.settings import StorageSettings

# Chunks of this size bound the memory a streamed read holds at once.
READ_CHUNK_BYTES = 4 * 1024 * 1024
# Chunks downloaded ahead of the one being read (see prefetched).
PREFETCH_CHUNKS = 2
# The connect timeout bounds each try at an address that does not answer at all.
# Any (here and below): keyword arguments of the Azure SDK, each of its own type.
FAIL_FAST_OPTIONS: dict[str, Any] = {"connection_timeout": 3, "read_timeout": 60}


class BlobNotFound(ExportError):
    """The blob (or its container) does not exist."""


class BlobChanged(ExportError):
    """The blob is no longer the version (ETag) a read was pinned to: it was replaced."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"blob '{name}' changed since it was first read.")


class BlobTooLarge(ExportError):
    """The blob is larger than its reader takes: no more than that was fetched."""

    def __init__(self, name: str, max_bytes: int):
        self.name = name
        super().__init__(f"blob '{name}' is over {max_bytes:,} bytes: not read.")


@dataclass(frozen=True)
class BlobInfo:
    name: str
    size: int
    etag: str | None = None  # the version listed; a read pinned to it sees that version or fails
    metadata: Mapping[str, str] | None = None  # listed only when asked for


class BlobStore(Protocol):
    """One container, as the core uses it."""

    def list_blobs(self, prefix: str, *, with_metadata: bool = False) -> list[BlobInfo]: ...

    def read_bytes(self, name: str, *, max_bytes: int | None = None) -> bytes:
        """The whole blob; past ``max_bytes``, :class:`BlobTooLarge` (no more than that is fetched)."""
        ...

    def iter_chunks(self, name: str, snapshot: str | None = None, *, etag: str | None = None) -> Iterator[bytes]:
        """The blob's bytes in chunks. With ``etag``, only that version: :class:`BlobChanged`
        (at the first chunk or any later one) if the blob was replaced since."""
        ...

    def blob_name_from_url(self, url: str) -> tuple[str, str | None] | None: ...

    def write_bytes(
        self, name: str, data: bytes, *, content_type: str, metadata: Mapping[str, str] | None = None
    ) -> None: ...

    def write_stream(self, name: str, stream: IO[bytes], *, content_type: str) -> None: ...

    def delete(self, name: str) -> None: ...

    def read_versioned(self, name: str, *, max_bytes: int) -> tuple[bytes, str] | None:
        """The blob and its ETag, or None if there is none. At most ``max_bytes`` + 1 bytes of it
        are fetched: a longer one reaches the caller cut short (and so not a valid document)."""
        ...

    def write_if(self, name: str, data: bytes, *, etag: str | None, content_type: str) -> bool:
        """Write only if the blob is still at ``etag`` (None: only if there is none); False if not."""
        ...


class AzureBlobStore:
    def __init__(self, container: ContainerClient):
        self._container = container

    @property
    def container_name(self) -> str:
        return str(self._container.container_name)

    def list_blobs(self, prefix: str, *, with_metadata: bool = False) -> list[BlobInfo]:
        include = ["metadata"] if with_metadata else None
        try:
            return [
                BlobInfo(b.name, b.size or 0, _quoted(b.etag), b.metadata if with_metadata else None)
                for b in self._container.list_blobs(name_starts_with=prefix, include=include)
            ]
        except ResourceNotFoundError:
            raise BlobNotFound(f"container '{self.container_name}' does not exist.") from None

    def blob_name_from_url(self, url: str) -> tuple[str, str | None] | None:
        """``(blob name, snapshot)`` if the URL names a blob of this container, else None.

        Parsed by the storage SDK; an ADLS Gen2 (``dfs``) URL of the same account counts too.
        """
        try:
            blob = BlobClient.from_blob_url(url.replace(".dfs.core.windows.net", ".blob.core.windows.net", 1))
        except (ValueError, TypeError):
            return None
        same_account = (blob.account_name or "").lower() == (self._container.account_name or "").lower()
        if not same_account or blob.container_name != self._container.container_name:
            return None
        ours = urlparse(self._container.url)
        theirs = urlparse(url.replace(".dfs.core.windows.net", ".blob.core.windows.net", 1))
        if (theirs.hostname or "").lower() != (ours.hostname or "").lower() or (theirs.port != ours.port):
            return None
        return blob.blob_name, blob.snapshot

    def read_bytes(self, name: str, *, max_bytes: int | None = None) -> bytes:
        # A bounded read asks for one byte past the bound: a blob that fills it is too large.
        offset, length = (None, None) if max_bytes is None else (0, max_bytes + 1)
        try:
            data = bytes(self._container.download_blob(name, offset, length).readall())
        except ResourceNotFoundError:
            raise BlobNotFound(f"blob '{name}' not found in container '{self.container_name}'.") from None
        except HttpResponseError as exc:
            if not _empty_range(exc):
                raise
            data = b""
        if max_bytes is not None and len(data) > max_bytes:
            raise BlobTooLarge(name, max_bytes)
        return data

    def iter_chunks(self, name: str, snapshot: str | None = None, *, etag: str | None = None) -> Iterator[bytes]:
        # The SDK pins every range request after the first to the first one's ETag; ``etag``
        # pins the first one too (If-Match), so the whole read is of the version asked for.
        pinned: dict[str, Any] = {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {}
        try:
            downloader = self._container.get_blob_client(name, snapshot=snapshot).download_blob(**pinned)
            yield from prefetched(downloader.chunks())
        except ResourceNotFoundError:
            raise BlobNotFound(f"blob '{name}' not found in container '{self.container_name}'.") from None
        except ResourceModifiedError:
            raise BlobChanged(name) from None

    def write_bytes(
        self, name: str, data: bytes, *, content_type: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        self._upload(name, data, content_type, metadata)

    def write_stream(self, name: str, stream: IO[bytes], *, content_type: str) -> None:
        """Upload ``stream`` in blocks, committed at once at the end: the blob is whole or as it was."""
        if isinstance(stream, io.RawIOBase):
            # After a short read the SDK's block uploader asks for a whole block again, and so
            # joins a stream of short reads into one block of all of it; a buffered reader
            # returns whole blocks.
            stream = io.BufferedReader(stream)
        self._upload(name, stream, content_type)

    def _upload(
        self, name: str, data: bytes | IO[bytes], content_type: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        try:
            self._container.upload_blob(
                name,
                data,
                overwrite=True,
                content_settings=ContentSettings(content_type=content_type),
                metadata=dict(metadata) if metadata else None,
            )
        except ResourceNotFoundError:
            raise BlobNotFound(f"container '{self.container_name}' does not exist.") from None

    def delete(self, name: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):  # already gone: the aim is met
            self._container.delete_blob(name)

    def read_versioned(self, name: str, *, max_bytes: int) -> tuple[bytes, str] | None:
        blob = self._container.get_blob_client(name)
        try:
            downloader = blob.download_blob(offset=0, length=max_bytes + 1)
            return bytes(downloader.readall()), str(downloader.properties.etag)
        except ResourceNotFoundError:
            return None
        except HttpResponseError as exc:
            if not _empty_range(exc):
                raise
        try:
            return b"", str(blob.get_blob_properties().etag)
        except ResourceNotFoundError:
            return None

    def write_if(self, name: str, data: bytes, *, etag: str | None, content_type: str) -> bool:
        settings = ContentSettings(content_type=content_type)
        try:
            if etag is None:
                self._container.upload_blob(name, data, overwrite=False, content_settings=settings)
            else:
                self._container.upload_blob(
                    name,
                    data,
                    overwrite=True,
                    content_settings=settings,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError):
            return False  # another writer came first
        return True


def _empty_range(exc: HttpResponseError) -> bool:
    """Whether a ranged read was refused because the blob is empty (416: no byte 0 to start at)."""
    return exc.status_code == 416


def _quoted(etag: str | None) -> str | None:
    """An ETag as a download and ``If-Match`` carry it: List Blobs gives it without the quotes
    (Blob Storage and Azurite alike), every other answer with them."""
    if not etag:
        return None
    return etag if etag.startswith('"') else f'"{etag}"'


def blob_service_client(
    storage: StorageSettings, credential: Any | None = None, *, fail_fast: bool = False
) -> BlobServiceClient:
    """The one place a BlobServiceClient is built: from a connection string, or an identity.

    ``fail_fast`` (the CLI): someone is waiting at a terminal, so unreachable storage is reported
    within about 15 s, where the SDK's own policy (15 s, 18 s, 24 s... between tries) rides out an
    outage of a minute and more, which suits the unattended worker.
    """
    options: dict[str, Any] = {
        "max_single_get_size": READ_CHUNK_BYTES,
        "max_chunk_get_size": READ_CHUNK_BYTES,
    }
    if fail_fast:
        options.update(FAIL_FAST_OPTIONS)
        # Waits of about 1, 3 and 5 s (each +-1 s): refused connections give up within about 12 s.
        options["retry_policy"] = ExponentialRetry(
            initial_backoff=1, increment_base=2, retry_total=3, random_jitter_range=1
        )
    if storage.connection_string:
        return BlobServiceClient.from_connection_string(storage.connection_string, **options)
    assert storage.blob_service_uri is not None
    return BlobServiceClient(storage.blob_service_uri, credential=credential, **options)


def prefetched(chunks: Iterator[bytes], depth: int = PREFETCH_CHUNKS) -> Generator[bytes, None, None]:
    """``chunks``, downloaded by a thread up to ``depth`` chunks ahead, so that the download of
    the next chunk overlaps the reading of this one (about a tenth of a run that sends little).
    An error of the download is raised where the chunk it cost would have been; closing the
    iterator early stops the thread."""
    ahead: queue.Queue[tuple[bytes | None, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[bytes | None, BaseException | None]) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                ahead.put(item, timeout=0.1)
                return True
        return False

    def fetch() -> None:
        try:
            for chunk in chunks:
                if not put((chunk, None)):
                    return
        except BaseException as exc:  # handed to the reader, raised there
            put((None, exc))
        else:
            put((None, None))

    threading.Thread(target=propagate(fetch), name="blob-prefetch", daemon=True).start()
    try:
        while True:
            chunk, error = ahead.get()
            if error is not None:
                raise error
            if chunk is None:
                return
            yield chunk
    finally:
        stop.set()


class ChunkStream(io.RawIOBase):
    """A read-only raw stream over an iterator of byte chunks (a blob download, a file)."""

    def __init__(self, chunks: Iterable[bytes | memoryview]):
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        # Drops the chunks (views of a caller's buffers, maybe) along with the stream.
        self._pending = memoryview(b"")
        self._chunks = iter(())
        super().close()

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
