"""The code's shape limits, checked: function length, module length, complexity, parameters.

`python -m tools.shape_check shared tools` prints each place over a limit and exits 1 if any.
The limits are the maintainers' (a function one screen, a module one sitting, no branch maze);
complexity is radon's cyclomatic complexity, where rank D starts at 21.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from radon.complexity import cc_visit

MAX_FUNCTION_LINES = 50
MAX_MODULE_LINES = 400
MAX_COMPLEXITY = 20  # radon rank C ends at 20; D and worse fail
MAX_PARAMETERS = 6  # beyond that, a parameter object


@dataclass(frozen=True)
class Excess:
    path: Path
    line: int
    what: str
    measured: int
    limit: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what} is {self.measured} (limit {self.limit})"


def _parameter_count(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    arguments = node.args
    named = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    if named and named[0].arg in ("self", "cls"):
        named = named[1:]
    return len(named)


def _function_excesses(path: Path, tree: ast.Module) -> Iterator[Excess]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        if length > MAX_FUNCTION_LINES:
            yield Excess(path, node.lineno, f"function {node.name}: lines", length, MAX_FUNCTION_LINES)
        parameters = _parameter_count(node)
        if parameters > MAX_PARAMETERS:
            yield Excess(path, node.lineno, f"function {node.name}: parameters", parameters, MAX_PARAMETERS)


def _complexity_excesses(path: Path, source: str) -> Iterator[Excess]:
    # radon lists methods both on their class and on their own; closures only inside their function.
    pending, seen = list(cc_visit(source)), set()
    while pending:
        block = pending.pop()
        pending.extend(getattr(block, "methods", []))
        pending.extend(getattr(block, "closures", []))
        if (block.lineno, block.name) in seen:
            continue
        seen.add((block.lineno, block.name))
        if block.complexity > MAX_COMPLEXITY:
            name = getattr(block, "fullname", block.name)
            yield Excess(path, block.lineno, f"{name}: complexity", block.complexity, MAX_COMPLEXITY)


def excesses(path: Path) -> list[Excess]:
    source = path.read_text(encoding="utf-8")
    found: list[Excess] = []
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(Excess(path, 1, "module: lines", lines, MAX_MODULE_LINES))
    found.extend(_function_excesses(path, ast.parse(source, filename=str(path))))
    found.extend(_complexity_excesses(path, source))
    return sorted(found, key=lambda excess: (excess.line, excess.what))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.shape_check", description=__doc__.splitlines()[0].replace("``", "")
    )
    parser.add_argument("roots", nargs="+", type=Path, help="folders (or files) to check")
    arguments = parser.parse_args(argv)
    files = sorted(file for root in arguments.roots for file in ([root] if root.is_file() else root.rglob("*.py")))
    found = [excess for file in files for excess in excesses(file)]
    for excess in found:
        print(excess)
    print(f"{len(files)} modules checked, {len(found)} over a limit", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
