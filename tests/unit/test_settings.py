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


def test_repr_holds_no_account_key_or_sas():
    s = Settings.from_env(
        {
            "EXPORT_STORAGE": "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0a2V5;"
            "EndpointSuffix=core.windows.net",
            "AzureWebJobsStorage": "BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=sv=1&sig=c2ln",
            "SECRETS_SOURCE": "environment",
        }
    )
    text = repr(s) + str(s)
    assert "c2VjcmV0a2V5" not in text and "sig=c2ln" not in text
    assert "AccountName=acct;AccountKey=***;" in text and "SharedAccessSignature=***" in text
    identity = Settings.from_env(
        {**BASE, "EXPORT_STORAGE": "", "EXPORT_STORAGE__blobServiceUri": "https://a.b/?sig=c2ln"}
    )
    assert "c2ln" not in repr(identity) and "https://a.b/?***" in repr(identity)
    assert identity.export_storage.blob_service_uri == "https://a.b/?sig=c2ln"  # only the repr hides it


@pytest.mark.parametrize(("value", "on"), [(None, False), ("True", True), ("false", False), ("1", True)])
def test_app_service_authentication_is_read_from_the_platform_setting(value, on):
    env = BASE if value is None else {**BASE, "WEBSITE_AUTH_ENABLED": value}
    assert Settings.from_env(env).app_service_auth is on


def test_a_malformed_flag_names_the_setting():
    with pytest.raises(SettingsError, match="WEBSITE_AUTH_ENABLED must be true or false"):
        Settings.from_env({**BASE, "WEBSITE_AUTH_ENABLED": "maybe"})
