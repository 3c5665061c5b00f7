"""local.settings.json under the environment: a setting the environment gives is taken whole."""

from __future__ import annotations

import argparse
import json
import logging
import os

from shared.entrypoints import cli
from shared.entrypoints.cli import configuration, dispatch, exits


def load(tmp_path, monkeypatch, environment: dict[str, str], values: dict[str, str]) -> dict[str, str]:
    for key in [k for k in os.environ if k.split("__")[0] in {k2.split("__")[0] for k2 in {**values, **environment}}]:
        monkeypatch.delenv(key, raising=False)
    # The loader writes the file's values into os.environ itself: set and unset each through
    # monkeypatch first, so that they are taken out again after the test and leak into no other.
    for key in values:
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    configuration.load_local_settings(argparse.Namespace(no_local_settings=False, local_settings=str(path)))
    return {k: os.environ[k] for k in {**values, **environment} if k in os.environ}


def test_the_files_connection_string_does_not_beat_the_environments_identity_form(tmp_path, monkeypatch):
    seen = load(
        tmp_path,
        monkeypatch,
        {"EXPORT_STORAGE__blobServiceUri": "https://prod.blob.core.windows.net"},
        {"EXPORT_STORAGE": "UseDevelopmentStorage=true", "SEGMENTS_CONTAINER": "segments"},
    )
    assert "EXPORT_STORAGE" not in seen and seen["SEGMENTS_CONTAINER"] == "segments"


def test_nor_the_other_way_round_and_unrelated_values_fill_in(tmp_path, monkeypatch):
    seen = load(
        tmp_path,
        monkeypatch,
        {"EXPORT_STORAGE": "UseDevelopmentStorage=true"},
        {"EXPORT_STORAGE__blobServiceUri": "https://prod.blob.core.windows.net", "EXPORT_QUEUE": "jobs"},
    )
    assert "EXPORT_STORAGE__blobServiceUri" not in seen and seen["EXPORT_QUEUE"] == "jobs"
    assert seen["EXPORT_STORAGE"] == "UseDevelopmentStorage=true"


def test_sigterm_is_taken_as_ctrl_c_only_while_main_runs(monkeypatch):
    import signal

    before = signal.getsignal(signal.SIGTERM)
    seen: list[object] = []

    def list_destinations(runtime, args):
        seen.append(signal.getsignal(signal.SIGTERM))
        try:
            signal.raise_signal(signal.SIGTERM)  # as `kill` would, mid-command
        except KeyboardInterrupt:
            # A second SIGTERM while the run releases its lock and saves its record: ignored.
            signal.raise_signal(signal.SIGTERM)
            seen.append("cleaned up")
            raise
        raise AssertionError("SIGTERM did not stop the command")

    monkeypatch.setattr(dispatch, "cli_runtime", lambda needs_secret: None)
    monkeypatch.setitem(dispatch.COMMANDS, "destinations", list_destinations)
    try:
        assert cli.main(["--no-local-settings", "destinations"]) == exits.EXIT_TERMINATED == 143
    finally:
        logging.disable(logging.NOTSET)  # main silences logging on its way out of an interrupt
    assert len(seen) == 2 and seen[0] is not before and seen[1] == "cleaned up"  # its own handler meanwhile
    assert signal.getsignal(signal.SIGTERM) is before  # and the caller's again after
