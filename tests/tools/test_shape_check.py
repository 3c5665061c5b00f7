"""The shape limits `make lint` holds (tools/shape_check): each one caught, named with its
place and figure, and a module within them passed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tools import shape_check


def _module(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "module.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def test_a_module_within_every_limit_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _module(tmp_path, "def small(a, b):\n    return a + b\n")
    assert shape_check.main([str(tmp_path)]) == 0
    assert shape_check.excesses(path) == []
    assert "1 modules checked, 0 over a limit" in capsys.readouterr().err


def test_each_limit_is_caught_and_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    long_body = "".join(f"    x{i} = {i}\n" for i in range(shape_check.MAX_FUNCTION_LINES))
    branches = "".join(f"    if a == {i}:\n        return {i}\n" for i in range(shape_check.MAX_COMPLEXITY))
    source = (
        f"def long():\n{long_body}"
        "class Thing:\n    def many(self, a, b, c, d, e, f, g):\n        return a\n"
        f"def branchy(a):\n{branches}    return -1\n"
    )
    path = _module(tmp_path, source)
    found = {(excess.what, excess.measured) for excess in shape_check.excesses(path)}
    assert found == {
        ("function long: lines", shape_check.MAX_FUNCTION_LINES + 1),
        ("function many: parameters", 7),  # self not counted
        ("branchy: complexity", shape_check.MAX_COMPLEXITY + 1),
    }
    assert shape_check.main([str(path)]) == 1
    assert f"{path}:1: function long: lines is 51 (limit 50)" in capsys.readouterr().out


def test_a_module_over_its_limit_is_caught(tmp_path: Path) -> None:
    path = _module(tmp_path, "x = 1\n" * (shape_check.MAX_MODULE_LINES + 1))
    assert [(e.what, e.measured) for e in shape_check.excesses(path)] == [("module: lines", 401)]
