"""checkov finds no failed check with the private network off (the default) and on.

checkov reads `privateNetwork ? 'Disabled' : 'Enabled'` as neither value, so it runs here on each
rendering of infra/ (render_variant.py), where every such conditional holds the value Azure gets in
that setting. On infra/ as written, checkov's own Key Vault network check fails to read that
conditional and prints a traceback, so this is where `make iac` runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from render_variant import render_tree

CHECKOV = Path(sys.executable).with_name("checkov")


@pytest.mark.parametrize("setting", ["off", "on"])
def test_checkov_passes_in_both_network_settings(setting: str, tmp_path: Path) -> None:
    tree = render_tree(setting == "on", tmp_path / f"vnet-{setting}")
    done = subprocess.run(  # noqa: S603 (checkov from this venv, on a folder the test made)
        [
            str(CHECKOV),
            "-d",
            str(tree),
            "--framework",
            "bicep",
            "--quiet",
            "--compact",
            "--skip-download",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    summary = {key: sum(r["summary"][key] for r in reports) for key in ("passed", "failed", "skipped")}
    failed = [
        f"{c['check_id']} {c['file_path']}:{c['resource']}" for r in reports for c in r["results"]["failed_checks"]
    ]
    assert failed == [] and summary["failed"] == 0, failed
    assert summary["passed"] >= 20  # checkov did read the templates
