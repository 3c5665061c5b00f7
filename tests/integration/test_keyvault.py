"""The real SecretClient against the HTTPS Key Vault stand-in: challenge auth, TLS, errors."""

import dataclasses

import pytest

from shared.adapters.secrets import KeyVaultSecretProvider
from shared.bootstrap import build_runtime
from shared.errors import SecretError
from shared.run.export import queue_run, run_export
from shared.settings import Settings
from tests.conftest import API_KEY, destination

pytestmark = pytest.mark.integration


def provider(vault, **options):
    return KeyVaultSecretProvider(vault.vault_url, vault.credential(), connection_verify=vault.ca_path, **options)


def test_secret_is_read_through_the_challenge_flow(keyvault):
    credential = keyvault.credential()
    value = KeyVaultSecretProvider(keyvault.vault_url, credential, connection_verify=keyvault.ca_path).get_secret(
        "sendgrid-api-key"
    )
    assert value == API_KEY
    # First unauthenticated (the challenge), then with the token the credential issued.
    assert keyvault.state.requests == [
        ("GET", "/secrets/sendgrid-api-key/", False),
        ("GET", "/secrets/sendgrid-api-key/", True),
    ]
    port = keyvault.vault_url.rsplit(":", 1)[1].strip("/")
    assert credential.scopes == [(f"https://0.0.1:{port}/.default",)]


def test_tls_is_verified(keyvault):
    client = KeyVaultSecretProvider(keyvault.vault_url, keyvault.credential(), retry_total=0)  # CA not trusted
    with pytest.raises(SecretError, match="not trusted"):
        client.get_secret("sendgrid-api-key")


def test_a_missing_secret_names_it_and_says_what_to_do(keyvault):
    with pytest.raises(SecretError, match=r"secret 'other-key' not found.*az keyvault secret set"):
        provider(keyvault).get_secret("other-key")


def test_an_unavailable_vault_is_a_clear_error(keyvault):
    keyvault.state.down = True
    with pytest.raises(SecretError, match="unavailable \\(HTTP 503\\)") as caught:
        provider(keyvault, retry_total=0).get_secret("sendgrid-api-key")
    assert API_KEY not in str(caught.value)


def keyvault_runtime(workspace, keyvault):
    env = {**workspace.env, "SECRETS_SOURCE": "keyvault", "KEY_VAULT_URL": keyvault.vault_url}
    del env["SENDGRID_SECRET_SENDGRID_API_KEY"]
    return build_runtime(
        Settings.from_env(env),
        credential=keyvault.credential(),
        key_vault_options={"connection_verify": keyvault.ca_path, "retry_total": 0},
    )


def test_an_export_reads_its_key_from_key_vault(workspace, simulator, keyvault):
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", "Email\na@example.com\nb@example.com\n")
    runtime = keyvault_runtime(workspace, keyvault)
    runtime.tuning = dataclasses.replace(runtime.tuning, job_poll_interval=0.02)
    record = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert record.status == "succeeded", record.errors
    assert simulator.members("Newsletter") == ["a@example.com", "b@example.com"]


def test_key_vault_down_sends_nothing_and_says_so(workspace, simulator, keyvault):
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", "Email\na@example.com\n")
    keyvault.state.down = True
    runtime = keyvault_runtime(workspace, keyvault)
    record = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert record.status == "failed" and "Key Vault" in record.errors[0] and "unavailable" in record.errors[0]
    assert simulator.state.requests == []  # not one call reached SendGrid
    assert API_KEY not in workspace.read_export(f"runs/newsletter/{record.run_id}.json").decode()
