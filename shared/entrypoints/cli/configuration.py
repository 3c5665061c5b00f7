"""The command's configuration: local.settings.json's Values under the environment, and the
runtime built from the settings (with a Key Vault client only where a command reads a secret)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from shared.bootstrap import build_runtime
from shared.errors import SettingsError
from shared.json_input import load_json
from shared.run.runtime import Runtime
from shared.settings import Settings

LOCAL_SETTINGS = "local.settings.json"
# Where a checkout keeps its local.settings.json (make up writes it there): found from any directory.
PROJECT_DIR = Path(__file__).resolve().parents[3]
# Only these read the SendGrid API key; the others must run without any Key Vault setting.
SECRET_COMMANDS = frozenset({"export", "check", "verify"})
# The local stack's CA for the Key Vault stand-in: given to the Key Vault client itself, so that a
# REQUESTS_CA_BUNDLE of the shell (corporate proxies, devcontainers) cannot take its place.
KEY_VAULT_CA_BUNDLE = "KEY_VAULT_CA_BUNDLE"


class _NoKeyVaultSetting:
    """Stands in for the Key Vault provider where a command reads no secret and none is set."""

    def get_secret(self, name: str) -> str:
        raise SettingsError(f"KEY_VAULT_URL is not set, and reading secret '{name}' needs it.")


def cli_runtime(needs_secrets: bool) -> Runtime:
    settings = Settings.from_env(require_key_vault=needs_secrets)
    if settings.secrets_source == "keyvault" and settings.key_vault_url is None:
        # Build no Key Vault client at all (there is no URL to build it with) and fail loudly if
        # anything asks for a secret after all.
        runtime = build_runtime(dataclasses.replace(settings, secrets_source="environment"), fail_fast=True)
        runtime.edges.secrets = _NoKeyVaultSetting()
        return runtime
    ca_bundle = os.environ.get(KEY_VAULT_CA_BUNDLE, "").strip()
    if ca_bundle and not Path(ca_bundle).is_file():
        raise SettingsError(f"{KEY_VAULT_CA_BUNDLE}={ca_bundle}: no such file (make up writes it; run make up).")
    options = {"connection_verify": ca_bundle} if ca_bundle else {}
    return build_runtime(settings, fail_fast=True, key_vault_options=options)


def settings_file(args: argparse.Namespace) -> Path | None:
    """The local.settings.json to read: --local-settings, else the current directory's, else the project's."""
    if args.no_local_settings:
        return None
    if args.local_settings:
        return Path(args.local_settings)
    for folder in (Path.cwd(), PROJECT_DIR):
        if (folder / LOCAL_SETTINGS).is_file():
            return folder / LOCAL_SETTINGS
    return None


def load_local_settings(args: argparse.Namespace) -> str:
    """Values of local.settings.json into the environment, under what the environment sets.

    Says on stderr which file it read. Returns what to add to a settings error: where no file
    was found, that it was looked for.
    """
    path = settings_file(args)
    if path is None:
        if args.no_local_settings:
            return ""
        places = " or ".join(dict.fromkeys(str(folder) for folder in (Path.cwd(), PROJECT_DIR)))
        print(f"settings: the environment only (no {LOCAL_SETTINGS} in {places})", file=sys.stderr)
        return (
            f" No {LOCAL_SETTINGS} was found in {places}: run 'make up' for the local stack, "
            "or give one with --local-settings PATH."
        )
    values = _file_values(path)
    print(f"settings: {path.resolve()} (the environment wins where it sets a value)", file=sys.stderr)
    # The environment wins, as it does for 'func start'; and it wins for a whole setting: one that
    # spans several keys (EXPORT_STORAGE, EXPORT_STORAGE__blobServiceUri, ...) is taken from the
    # file only if the environment sets none of them, or a connection string from the file would
    # quietly beat the environment's identity-based form (or the other way round).
    set_in_environment = {_setting_family(key) for key in os.environ}
    for key, value in values.items():
        if _setting_family(key) not in set_in_environment:
            os.environ[key] = value
    return f" (settings read from {path})"


def _file_values(path: Path) -> dict[str, str]:
    """The Values of the local.settings.json at ``path``; a SettingsError if it is not one."""
    if not path.is_file():
        raise SettingsError(f"--local-settings {path}: no such file.")
    try:
        values = load_json(path.read_text(encoding="utf-8-sig"), str(path)).get("Values", {})
    except (OSError, ValueError, AttributeError) as exc:
        raise SettingsError(
            f"{path} is not a local.settings.json ({type(exc).__name__}): fix it, or run with --no-local-settings."
        ) from None
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise SettingsError(f"{path}: 'Values' must be an object of strings, as 'func start' reads it.")
    return values


def _setting_family(key: str) -> str:
    return key.split("__", 1)[0].lower()
