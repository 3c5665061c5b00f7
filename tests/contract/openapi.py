"""Validate recorded requests against SendGrid's OpenAPI 3.1 documents (JSON Schema 2020-12)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_FILES = ("tsg_mc_contacts_v3.json", "tsg_mc_lists_v3.json", "tsg_mc_custom_fields_v3.json")


@dataclass
class Operation:
    uri: str
    method: str
    template: str
    pattern: re.Pattern[str]
    spec: dict[str, Any]


class OpenApiContract:
    def __init__(self, folder: Path):
        self.docs: dict[str, dict[str, Any]] = {}
        registry: Registry = Registry()
        self.operations: list[Operation] = []
        for name in SPEC_FILES:
            doc = json.loads((folder / name).read_text())
            uri = f"urn:sendgrid-oai:{name}"
            self.docs[name] = doc
            registry = registry.with_resource(uri, Resource.from_contents(doc, default_specification=DRAFT202012))
            for template, ops in doc["paths"].items():
                regex = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
                for method, op in ops.items():
                    if method in ("get", "put", "post", "patch", "delete"):
                        self.operations.append(Operation(uri, method.upper(), template, re.compile(regex), op))
        self.registry = registry

    def operation(self, method: str, path: str) -> Operation:
        # The most specific template wins (fewest parameters), as routers do.
        matches = [op for op in self.operations if op.method == method and op.pattern.match(path)]
        if not matches:
            raise AssertionError(f"{method} {path} is not an operation of SendGrid's OpenAPI documents")
        return min(matches, key=lambda op: op.template.count("{"))

    def schema(self, name: str, pointer: str) -> dict[str, Any]:
        node: Any = self.docs[name]
        for part in pointer.strip("/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _validator(self, op: Operation, pointer: str) -> Draft202012Validator:
        return Draft202012Validator(
            {"$ref": f"{op.uri}#{pointer}"}, registry=self.registry, format_checker=FormatChecker()
        )

    def check(self, method: str, path: str, query: str, body: str | None) -> list[str]:
        """Every way the request departs from the operation's documented parameters and body."""
        op = self.operation(method, path)
        problems: list[str] = []
        declared = {p["name"]: (i, p) for i, p in enumerate(op.spec.get("parameters", [])) if p.get("in") == "query"}
        for name, values in parse_qs(query, keep_blank_values=True).items():
            if name not in declared:
                problems.append(f"{method} {op.template}: query parameter '{name}' is not documented")
                continue
            index, param = declared[name]
            value: Any = values[0]
            if param.get("schema", {}).get("type") in ("number", "integer"):
                value = float(value)
            escaped = op.template.replace("~", "~0").replace("/", "~1")
            pointer = f"/paths/{escaped}/{op.method.lower()}/parameters/{index}/schema"
            problems += [
                f"{method} {op.template} ?{name}: {e.message}" for e in self._validator(op, pointer).iter_errors(value)
            ]
        content = op.spec.get("requestBody", {}).get("content", {})
        if body:
            if "application/json" not in content:
                problems.append(f"{method} {op.template}: sends a body the operation does not take")
            else:
                escaped = op.template.replace("~", "~0").replace("/", "~1")
                pointer = f"/paths/{escaped}/{op.method.lower()}/requestBody/content/application~1json/schema"
                errors = self._validator(op, pointer).iter_errors(json.loads(body))
                problems += [f"{method} {op.template} body at {list(e.absolute_path)}: {e.message}" for e in errors]
        elif content and op.spec.get("requestBody", {}).get("required"):
            problems.append(f"{method} {op.template}: the operation requires a body")
        return problems
