import pytest

from shared.errors import SettingsError
from shared.settings import Settings

BASE = {"EXPORT_STORAGE": "UseDevelopmentStorage=true", "SECRETS_SOURCE": "environment"}


def test_defaults_match_the_contract():
    s = Settings.from_env(BASE)
    assert (s.segments_container, s.exports_container, s.destinations_blob) == (
        "segments",
        "sendgrid-exports",
        "destinations.json",
    )
    assert s.export_schedule == "0 0 3 * * *"
    assert s.export_queue == "sendgrid-export-jobs"
    assert s.sendgrid_api_base_url is None
    assert s.export_storage.connection_string == "UseDevelopmentStorage=true"


def test_export_storage_falls_back_to_host_storage():
    s = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "SECRETS_SOURCE": "environment"})
    assert s.export_storage.setting_name == "AzureWebJobsStorage"


def test_identity_based_storage():
    s = Settings.from_env(
        {
            "EXPORT_STORAGE__blobServiceUri": "https://acct.blob.core.windows.net/",
            "EXPORT_STORAGE__queueServiceUri": "https://acct.queue.core.windows.net",
            "EXPORT_STORAGE__clientId": "1111",
            "KEY_VAULT_URL": "https://kv.vault.azure.net/",
        }
    )
    assert s.export_storage.uses_identity
    assert s.export_storage.blob_service_uri == "https://acct.blob.core.windows.net"
    assert s.export_storage.client_id == "1111"
    assert s.secrets_source == "keyvault"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "EXPORT_STORAGE"),
        ({"EXPORT_STORAGE": "not a connection string"}, "EXPORT_STORAGE"),
        ({**BASE, "SECRETS_SOURCE": "vault"}, "SECRETS_SOURCE"),
        ({"EXPORT_STORAGE": "UseDevelopmentStorage=true"}, "KEY_VAULT_URL"),
        ({"EXPORT_STORAGE": "UseDevelopmentStorage=true", "KEY_VAULT_URL": "http://kv"}, "KEY_VAULT_URL"),
        ({**BASE, "SEGMENTS_CONTAINER": "Bad_Name"}, "SEGMENTS_CONTAINER"),
        ({**BASE, "EXPORTS_CONTAINER": "x"}, "EXPORTS_CONTAINER"),
        ({**BASE, "EXPORT_SCHEDULE": "0 3 * * *"}, "EXPORT_SCHEDULE"),
        ({**BASE, "EXPORT_QUEUE": "UPPER"}, "EXPORT_QUEUE"),
        ({**BASE, "SENDGRID_API_BASE_URL": "ftp://x"}, "SENDGRID_API_BASE_URL"),
        ({**BASE, "DESTINATIONS_BLOB": "../x.json"}, "DESTINATIONS_BLOB"),
        (
            {"EXPORT_STORAGE__blobServiceUri": "not-a-url", "SECRETS_SOURCE": "environment"},
            "EXPORT_STORAGE__blobServiceUri",
        ),
    ],
)
def test_bad_settings_fail_fast_naming_the_setting(env, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)
