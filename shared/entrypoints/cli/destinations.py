"""The commands about destinations.json: ``destinations`` (what the stored one configures) and
``validate-destinations`` (a file checked offline, before it is uploaded)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shared.entrypoints.cli.configuration import PROJECT_DIR
from shared.entrypoints.cli.exits import EXIT_OK, EXIT_USAGE
from shared.entrypoints.cli.output import print_json, print_lines
from shared.errors import ConfigError
from shared.inputs.config import parse_destinations
from shared.run.destinations import load_destinations
from shared.run.runtime import Runtime

MAX_DESTINATIONS_BYTES = 1024 * 1024  # a destinations.json is a few kilobytes


def destinations(runtime: Runtime, args: argparse.Namespace) -> int:
    config = load_destinations(runtime)
    out = [config.destinations[n].public_view() for n in sorted(config.destinations)]
    out += [{"name": n, "error": str(e)} for n, e in sorted(config.invalid.items())]
    print_json({"destinations": out})
    return EXIT_OK


def validate_destinations(args: argparse.Namespace) -> int:
    """The file against the JSON schema (where the checkout has it) and the app's own rules."""
    path = Path(args.file)
    try:
        if path.stat().st_size > MAX_DESTINATIONS_BYTES:
            raise ConfigError(f"{path} is larger than {MAX_DESTINATIONS_BYTES:,} bytes: not a destinations.json.")
        text = path.read_bytes()
        problems = [f"schema: {p}" for p in schema_problems(text)]
        config = parse_destinations(text, source=str(path))
    except OSError as exc:
        print(f"error: {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:  # a fault of the whole document: no destination could be read
        print(f"FAIL {path}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    lines = [f"ok   {name}" for name in sorted(config.destinations)]
    lines += [f"FAIL {name}: {error}" for name, error in sorted(config.invalid.items())]
    lines += [f"FAIL {problem}" for problem in problems]
    valid = not config.invalid and not problems
    lines.append(f"{path}: {'valid' if valid else 'NOT valid'} ({len(config.destinations)} destination(s) usable)")
    print_lines(lines)
    return EXIT_OK if valid else EXIT_USAGE


def schema_problems(text: bytes) -> list[str]:
    """Where the schema and jsonschema are at hand (a checkout with its dev tools): what the schema
    refuses, each with where in the document. The app's rules are checked in any case."""
    schema_path = PROJECT_DIR / "schemas" / "destinations.schema.json"
    try:
        import jsonschema
    except ImportError:
        return []
    if not schema_path.is_file():
        return []
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return []  # the rules say why, once
    validator = jsonschema.Draft202012Validator(json.loads(schema_path.read_text()))
    try:
        found = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])[:20]
    except RecursionError:  # the rules refuse such a file too, saying why
        return ["(top): nested too deeply to check against the schema"]
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:200]}" for e in found]
