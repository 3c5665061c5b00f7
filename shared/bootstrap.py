"""The composition root: the one place the real edges (storage, Key Vault, SendGrid) are built,
with the settings and the tuning they run under."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.adapters.jobs import AzureJobQueue, queue_client
from shared.adapters.locks import BlobLeaseLock
from shared.adapters.memory import release_free_memory, return_large_buffers_to_the_os
from shared.adapters.secrets import EnvironmentSecretProvider, KeyVaultSecretProvider, SecretProvider
from shared.adapters.sendgrid import ClientTuning, SendGridClient
from shared.adapters.storage import AzureBlobStore, blob_service_client
from shared.run.ports import Edges
from shared.run.records import RunRecordStore
from shared.run.runtime import Runtime, Tuning
from shared.settings import Settings


def default_credential(settings: Settings) -> Any:
    """``DefaultAzureCredential``: the managed identity in Azure, your az/azd login locally."""
    from azure.identity import DefaultAzureCredential

    client_id = settings.export_storage.client_id
    return DefaultAzureCredential(managed_identity_client_id=client_id) if client_id else DefaultAzureCredential()


def build_runtime(
    settings: Settings,
    *,
    credential: Any | None = None,
    environ: Mapping[str, str] | None = None,
    key_vault_options: Mapping[str, Any] | None = None,
    fail_fast: bool = False,
) -> Runtime:
    """``fail_fast``: storage calls give up within about 15 s (the CLI; see :func:`blob_service_client`)."""
    needs_identity = (
        settings.export_storage.uses_identity
        or settings.host_storage.uses_identity
        or settings.secrets_source == "keyvault"
    )
    return_large_buffers_to_the_os()
    if credential is None and needs_identity:
        credential = default_credential(settings)
    service = blob_service_client(settings.export_storage, credential, fail_fast=fail_fast)
    secrets: SecretProvider
    if settings.secrets_source == "keyvault":
        assert settings.key_vault_url is not None
        secrets = KeyVaultSecretProvider(settings.key_vault_url, credential, **dict(key_vault_options or {}))
    else:
        secrets = EnvironmentSecretProvider(environ)
    exports = service.get_container_client(settings.exports_container)
    exports_store = AzureBlobStore(exports)
    # The client's tuning, read from the settings once; a client is made for each run or check, with
    # its destination's key.
    client_tuning = ClientTuning(errors_file_hosts=settings.errors_file_hosts)
    edges = Edges(
        segments=AzureBlobStore(service.get_container_client(settings.segments_container)),
        exports=exports_store,
        secrets=secrets,
        sendgrid=lambda base_url, api_key: SendGridClient(base_url, api_key, client_tuning),
        lock=BlobLeaseLock(exports),
        jobs=AzureJobQueue(lambda: queue_client(settings.host_storage, settings.export_queue, credential)),
        records=RunRecordStore(exports_store),
    )
    return Runtime(settings, edges, Tuning.from_settings(settings, release_memory=release_free_memory))
