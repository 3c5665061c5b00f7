"""What a person at a shell sees and relies on: the mapping checked before any list exists, the
CLI's exit codes, summary, runs table and pipes, and an offline check of destinations.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.run.export import queue_run, run_export
from tests.conftest import REPO, destination, make_runtime

pytestmark = pytest.mark.integration


def cli(workspace, *args: str, cwd: Path = REPO, env_overrides: dict[str, str] | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENDGRID_", "EXPORT_", "KEY_VAULT"))}
    env.update(workspace.env)
    env.update(env_overrides or {})
    return subprocess.run(
        [sys.executable, "-m", "shared", *args, "--no-local-settings"],  # a global option after the command
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_mapping_that_names_a_missing_column_fails_before_any_list_is_created(workspace, simulator):
    workspace.put_segment("people.csv", "Mail,FirstName\na@example.com,Ann\n")
    workspace.put_destinations(destination(mapping={"email": "Email"}))
    record = run_export(make_runtime(workspace), queue_run(make_runtime(workspace), "newsletter", trigger="cli"))
    assert record.status == "failed" and "has no column 'Email'" in record.errors[0]
    assert simulator.snapshot()["lists"] == []  # no empty list left behind
    assert not [r for r in simulator.state.requests if r["method"] != "GET"]


def test_an_untrusted_vault_certificate_names_the_ca_bundle_variable_and_a_given_ca_wins(keyvault, monkeypatch):
    import certifi

    from shared.adapters.secrets import KeyVaultSecretProvider, SecretConfigError

    # A shell's REQUESTS_CA_BUNDLE (corporate, devcontainer) without the stand-in's CA in it.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    plain = KeyVaultSecretProvider(keyvault.vault_url, keyvault.credential(), retry_total=0)
    with pytest.raises(SecretConfigError, match=r"not trusted.*REQUESTS_CA_BUNDLE=") as caught:
        plain.get_secret("sendgrid-api-key")
    assert "Check KEY_VAULT_URL" not in str(caught.value)
    # The CA given to the client itself (what KEY_VAULT_CA_BUNDLE does) wins over the environment's.
    given = KeyVaultSecretProvider(
        keyvault.vault_url, keyvault.credential(), retry_total=0, connection_verify=keyvault.ca_path
    )
    assert given.get_secret("sendgrid-api-key")


def test_a_missing_secret_exits_with_the_configuration_code_and_records_no_run(workspace, simulator):
    workspace.put_segment("people.csv", "Email\na@example.com\n")
    workspace.put_destinations(destination())
    proc = cli(workspace, "export", "newsletter", env_overrides={"SENDGRID_SECRET_SENDGRID_API_KEY": ""})
    assert proc.returncode == 2, proc.stderr
    assert "SENDGRID_SECRET_SENDGRID_API_KEY" in proc.stderr and proc.stdout == ""
    assert workspace.export_names("runs/") == [] and simulator.state.requests == []


def test_runs_json_into_a_closed_pipe_exits_0_quietly(workspace, simulator):
    workspace.put_segment("people.csv", "Email\na@example.com\n")
    workspace.put_destinations(destination())
    assert cli(workspace, "export", "newsletter").returncode == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `| head` does once it has what it wants
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENDGRID_", "EXPORT_", "KEY_VAULT"))}
    proc = subprocess.run(
        [sys.executable, "-m", "shared", "runs", "newsletter", "--json", "--no-local-settings"],
        cwd=REPO,
        env={**env, **workspace.env},
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )
    os.close(write_end)
    assert proc.returncode == 0 and "Error" not in proc.stderr, proc.stderr


def test_version_help_and_options_after_the_command(workspace, simulator):
    version = cli(workspace, "--version")
    assert version.returncode == 0 and version.stdout.startswith("sendgrid-export ")
    helped = cli(workspace, "check", "--help")
    assert helped.returncode == 0
    assert "Preflight for one destination" in helped.stdout and "4    skipped" in helped.stdout
    workspace.put_destinations(destination())
    listed = cli(workspace, "destinations", "--json", "-v")  # global options after the command
    assert listed.returncode == 0 and json.loads(listed.stdout)["destinations"][0]["name"] == "newsletter"


def test_the_installed_command_works_from_any_directory_and_says_which_settings_it_read(workspace, tmp_path):
    command = REPO / ".venv" / "bin" / "sendgrid-export"
    if not command.exists():
        pytest.skip("make install puts the command in .venv/bin")
    workspace.put_destinations(destination())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENDGRID_", "EXPORT_", "KEY_VAULT", "Azure"))}
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": workspace.env}))
    found = subprocess.run(
        [str(command), "destinations"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert found.returncode == 0, found.stderr
    assert f"settings: {tmp_path / 'local.settings.json'}" in found.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    none = subprocess.run(
        [str(command), "destinations", "--local-settings", str(elsewhere / "absent.json")],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert none.returncode == 2 and "no such file" in none.stderr


def validate_offline(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``validate-destinations`` with no storage and no settings: as in CI before an upload."""
    return subprocess.run(
        [sys.executable, "-m", "shared", "validate-destinations", str(path)],
        cwd=cwd,
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_validate_destinations_needs_no_settings_and_names_each_fault(tmp_path):
    good = validate_offline(REPO / "samples" / "destinations.json", tmp_path)
    assert good.returncode == 0 and "valid" in good.stdout, good.stderr
    bad_file = tmp_path / "destinations.json"
    bad_file.write_text(json.dumps({"destinations": [destination(region="mars"), destination(name="ok")]}))
    bad = validate_offline(bad_file, tmp_path)
    assert bad.returncode == 2
    assert "FAIL newsletter" in bad.stdout and "region" in bad.stdout and "ok   ok" in bad.stdout
    assert "schema: destinations/0" in bad.stdout  # the JSON schema's verdict too


@pytest.mark.parametrize(
    "content",
    ['{"destinations": [' + "[" * 900 + "]" * 900 + "]}", "{" * 100_000, "not json", "x" * (1024 * 1024 + 1)],
)
def test_validate_destinations_meets_a_hostile_file_with_a_clear_error(tmp_path, content):
    hostile = tmp_path / "destinations.json"
    hostile.write_text(content)
    proc = validate_offline(hostile, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-500:]
    assert "FAIL" in proc.stdout + proc.stderr
