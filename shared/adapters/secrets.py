"""Where the SendGrid API key comes from: Key Vault in Azure, the environment for local work."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Protocol

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.keyvault.secrets import SecretClient

from shared.errors import SecretError
from shared.privacy import register_secret


class SecretConfigError(SecretError):
    """The key cannot be read because of how things are set up (it is missing or empty, the
    identity may not read it, the vault's certificate is not trusted): trying again will not help."""


class SecretProvider(Protocol):
    def get_secret(self, name: str) -> str: ...


class KeyVaultSecretProvider:
    def __init__(self, vault_url: str, credential: Any, **client_options: Any):
        self._vault_url = vault_url
        self._verify = client_options.get("connection_verify")
        self._client = SecretClient(vault_url=vault_url, credential=credential, **client_options)

    def get_secret(self, name: str) -> str:
        try:
            value = self._client.get_secret(name).value
        except ResourceNotFoundError:
            raise SecretConfigError(
                f"secret '{name}' not found in Key Vault {self._vault_url}: store the SendGrid API "
                f"key there (az keyvault secret set --vault-name <vault> --name {name} --value ...)."
            ) from None
        except ClientAuthenticationError as exc:
            raise SecretConfigError(
                f"could not authenticate to Key Vault {self._vault_url} to read secret '{name}': "
                f"{_first_line(exc)}. The app's identity needs the 'Key Vault Secrets User' role."
            ) from None
        except HttpResponseError as exc:
            if exc.status_code is not None and exc.status_code >= 500:
                raise SecretError(
                    f"Key Vault {self._vault_url} is unavailable (HTTP {exc.status_code}) while reading "
                    f"secret '{name}'; nothing was sent. Try again later."
                ) from None
            hint = (
                " The app's identity needs the 'Key Vault Secrets User' role on the vault."
                if exc.status_code == 403
                else ""
            )
            raise SecretConfigError(
                f"Key Vault {self._vault_url} refused to return secret '{name}' (HTTP {exc.status_code}).{hint}"
            ) from None
        except ServiceRequestError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise SecretConfigError(
                    f"Key Vault {self._vault_url}: its TLS certificate is not trusted (CERTIFICATE_VERIFY_FAILED) "
                    f"while reading secret '{name}'. {_ca_in_use(self._verify)}"
                ) from None
            raise SecretError(
                f"Key Vault {self._vault_url} could not be reached to read secret '{name}': "
                f"{_first_line(exc)}. Check KEY_VAULT_URL and the network path to the vault."
            ) from None
        if not value:
            raise SecretConfigError(f"secret '{name}' in Key Vault {self._vault_url} is empty.")
        register_secret(value)
        return value

    def close(self) -> None:
        self._client.close()


class EnvironmentSecretProvider:
    """For local work only: secret ``sendgrid-api-key`` is env var ``SENDGRID_SECRET_SENDGRID_API_KEY``."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        self._env = os.environ if environ is None else environ

    @staticmethod
    def variable_for(name: str) -> str:
        return "SENDGRID_SECRET_" + name.upper().replace("-", "_")

    def get_secret(self, name: str) -> str:
        variable = self.variable_for(name)
        value = (self._env.get(variable) or "").strip()
        if not value:
            raise SecretConfigError(
                f"secret '{name}' is not set: with SECRETS_SOURCE=environment it is read from the "
                f"environment variable {variable}."
            )
        register_secret(value)
        return value


def _ca_in_use(verify: object) -> str:
    """Which CA bundle verified the vault's certificate: the cause, named, where it is a setting."""
    if isinstance(verify, str):
        return f"The CA bundle given for Key Vault (KEY_VAULT_CA_BUNDLE={verify}) does not hold the CA that signed it."
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        if os.environ.get(variable):
            return (
                f"The CA bundle in use is {variable}={os.environ[variable]} (set in the environment), which does not "
                f"hold the CA that signed it: add that CA to it, or (for the local stack) set KEY_VAULT_CA_BUNDLE."
            )
    return "The default CA bundle does not hold the CA that signed it: set REQUESTS_CA_BUNDLE to one that does."


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
