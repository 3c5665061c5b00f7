"""README's commands work as typed on a fresh clone, where the system Python has none of the
project's packages: a Python module is run with the project's environment, never a bare python."""

from __future__ import annotations

import re

from tests.conftest import REPO


def test_every_python_command_in_readme_names_the_projects_environment():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    bare = [
        f"line {readme.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
        for m in re.finditer(r"(?<![/\w.-])python3?(?:\.\d+)? -m [\w.]+", readme)
    ]
    assert bare == [], "run these as .venv/bin/python -m ...: " + "; ".join(bare)
