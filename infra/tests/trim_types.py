"""Trim a bicep-types-az `types.md` to the sections a template uses (see azure-types/SOURCE.md).

    python infra/tests/trim_types.py FULL_TYPES_MD "Resource Microsoft.Web/sites@2024-04-01" SiteConfig ... > OUT.md
    python infra/tests/trim_types.py FULL_TYPES_MD --like azure-types/web-2024-04-01.md > OUT.md

keeps the file's title, then each named section (a `## ` heading: a resource, or a type), whole,
in the order given, and drops every description: a property line keeps its name, type,
constraints ({minValue: ...}) and flags ((ReadOnly), (Required), ...), which is all the check
reads. `--like FILE` keeps the sections a vendored file has (to refresh it from a newer full file).
With no section named, every section is kept: that is how the vendored files are checked to be in
this form (test_types.py).
"""

from __future__ import annotations

import re
import sys

from azure_types import _PROP


def sections(text: str) -> tuple[str, dict[str, list[str]]]:
    """The title line and each `## ` section's lines, by heading (a repeated heading keeps its first)."""
    title, found, current = "", {}, None
    for line in text.splitlines():
        if line.startswith("# "):
            title = line
        elif line.startswith("## "):
            heading = line[3:].strip()
            current = None if heading in found else found.setdefault(heading, [])
        elif current is not None:
            current.append(line)
    return title, found


def strip_description(line: str) -> str | None:
    """A property line without its description; other structure kept; description-only lines dropped."""
    if line.startswith("#") or line == "":
        return line
    match = _PROP.match(line)
    if not match:
        return None if not line.startswith("* **") else line
    text = f"* **{match['name']}**: {match['type']}"
    if match["constraints"]:
        text += f" {match['constraints']}"
    if match["flags"]:
        text += f" ({match['flags']})"
    return text


def trim(text: str, keep: list[str] | None = None) -> str:
    title, found = sections(text)
    names = keep if keep else list(found)
    missing = [n for n in names if n not in found]
    if missing:
        raise SystemExit(f"not in the file: {', '.join(missing)}")
    out = [title, ""]
    for name in names:
        body = [s for s in (strip_description(line) for line in found[name]) if s is not None]
        while body and body[-1] == "":
            body.pop()
        out += [f"## {name}", *body, ""]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).rstrip("\n") + "\n"


if __name__ == "__main__":
    names = sys.argv[2:]
    if names[:1] == ["--like"]:
        with open(names[1], encoding="utf-8") as vendored:
            names = list(sections(vendored.read())[1])
    with open(sys.argv[1], encoding="utf-8") as source:
        sys.stdout.write(trim(source.read(), names))
