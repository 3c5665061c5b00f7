"""Unit tests run without the local stand-ins: nothing they load imports tools/ or trustme.

The scan follows what pytest loads for tests/unit (its test modules and the conftest files on the
way down to it) and every first-party module those import, at any depth, function-level imports
included.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "tests" / "unit"
FORBIDDEN = ("tools", "trustme")
FIRST_PARTY = ("tests", "shared", "function_app")


def imported_modules(source: str) -> set[str]:
    """Every module an import statement in ``source`` names (``from a import b``: ``a`` and ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def forbidden(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in FORBIDDEN}


def _module_file(module: str) -> Path | None:
    base = REPO.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _with_packages(module: str) -> list[str]:
    """The module and the packages above it: importing ``a.b.c`` runs ``a`` and ``a.b`` too."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def files_loaded_by_unit_tests() -> dict[Path, set[str]]:
    """Each first-party file the unit tests load, with the modules it imports."""
    conftests = [p / "conftest.py" for p in (REPO, REPO / "tests", UNIT) if (p / "conftest.py").is_file()]
    pending = [*sorted(UNIT.glob("*.py")), *conftests]
    seen: dict[Path, set[str]] = {}
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen[path] = modules = imported_modules(path.read_text(encoding="utf-8"))
        for module in modules:
            if module.split(".")[0] not in FIRST_PARTY:
                continue
            for name in _with_packages(module):
                target = _module_file(name)
                if target is not None and target not in seen:
                    pending.append(target)
    return seen


def test_the_scan_sees_every_form_of_import() -> None:
    source = "import tools.bench\nfrom tools import demo\ndef f():\n    import trustme\nfrom shared import errors\n"
    assert forbidden(imported_modules(source)) == {"tools.bench", "tools", "tools.demo", "trustme"}


def test_the_scan_reaches_the_shared_conftest_and_the_fakes() -> None:
    loaded = files_loaded_by_unit_tests()
    assert REPO / "tests" / "conftest.py" in loaded
    assert REPO / "tests" / "fakes.py" in loaded
    assert REPO / "shared" / "bootstrap.py" in loaded


def test_unit_tests_import_neither_tools_nor_trustme() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(bad)
        for path, modules in files_loaded_by_unit_tests().items()
        if (bad := forbidden(modules))
    }
    assert offenders == {}, f"unit tests must run without the local stand-ins: {offenders}"
