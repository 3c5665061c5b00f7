"""Check the Bicep against Azure's own resource type definitions, offline.

The definitions are the `types.md` files Azure/bicep-types-az generates from the REST API specs
(one per provider and API version), trimmed to what the templates use: see azure-types/SOURCE.md.
For every resource declared in infra/ this checks, as `bicep build` would (and a little stricter):

- its type@apiVersion is in the vendored files (an `existing` resource too);
- every property written exists on its type, and is not ReadOnly;
- every literal value has the right kind (string, int, bool, object, array), lies within the
  type's minValue/maxValue, and, where the type lists literals, is one of them. Bicep accepts any
  string where the list ends in `| string`; here a literal must still be a listed one (a value
  off the list is nearly always a typo).

A value the checker cannot know (a parameter, a function, a property of another resource) is not
checked, except a parameter with @allowed, whose every allowed value is, and a conditional
(`a ? b : c`), whose both branches are. A loop's body and a conditional resource are checked too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

TYPES_DIR = Path(__file__).resolve().parent / "azure-types"

# Bicep keywords of a resource body that are not properties of the resource's type.
BICEP_KEYWORDS = {
    "parent",
    "scope",
    "dependsOn",
    "depends_on",
}  # depends_on: how pycep names a nested resource's implicit parent


@dataclass
class Prop:
    name: str
    kind: str  # 'ref', 'string', 'int', 'bool', 'any', 'object', 'enum'
    ref: str = ""
    array: bool = False
    literals: tuple[str, ...] = ()
    open_enum: bool = False
    read_only: bool = False
    min_value: int | None = None
    max_value: int | None = None


@dataclass
class ObjectType:
    name: str
    props: dict[str, Prop] = field(default_factory=dict)
    additional: Prop | None = None


@dataclass
class TypeFile:
    resources: dict[str, list[ObjectType]]  # 'Type@version' -> its body (one per discriminated variant)
    objects: dict[str, ObjectType]


_PROP = re.compile(
    r"^\* \*\*(?P<name>[^*]+)\*\*: (?P<type>.+?)"
    r"(?: (?P<constraints>\{(?:[^{}\"]|\"(?:[^\"\\]|\\.)*\")*\}))?"
    r"(?: \((?P<flags>[A-Za-z, ]+)\))?(?:: .*)?$"
)
_LINK = re.compile(r"^\[(\w+)\]\(#\w+\)$")


def parse_type(expression: str, name: str = "") -> Prop:
    """One property's type as types.md writes it: `string`, `[Name](#name)[]`, `'a' | 'b' | string`."""
    prop = Prop(name=name, kind="any")
    text = expression.strip()
    if text.endswith("[]"):
        prop.array = True
        text = text[:-2]
        if text.startswith("(") and text.endswith(")"):
            text = text[1:-1]
    link = _LINK.match(text)
    if link:
        prop.kind, prop.ref = "ref", link[1]
    elif text.startswith("'"):
        parts = [p.strip() for p in text.split(" | ")]
        prop.kind = "enum"
        prop.literals = tuple(p.strip("'") for p in parts if p.startswith("'"))
        prop.open_enum = "string" in parts
    elif text in ("string", "int", "bool", "any", "object"):
        prop.kind = text
    elif re.fullmatch(r"\w+", text):  # the older, link-less format: a bare type name
        prop.kind, prop.ref = "ref", text
    return prop


def parse_types_md(text: str) -> TypeFile:
    resources: dict[str, list[ObjectType]] = {}
    objects: dict[str, ObjectType] = {}
    current: ObjectType | None = None
    resource_key = ""
    in_properties = False
    for line in text.splitlines():
        heading = re.match(r"^(#{2,4}) (.*)$", line)
        if heading:
            level, title = len(heading[1]), heading[2].strip()
            in_properties = title in ("Properties", "Additional Properties")
            resource = re.match(r"^Resource (\S+@\S+)", title)
            if level == 2 and resource:
                current = ObjectType(resource[1])
                resources.setdefault(resource[1], []).append(current)
                resource_key = resource[1]
            elif level == 2:
                current = objects.setdefault(title, ObjectType(title))
                resource_key = ""
            elif level == 3 and title.startswith("Microsoft.") and resource_key:
                # a discriminated resource: each variant is a body of its own
                current = ObjectType(resource_key)
                variants = resources[resource_key]
                if variants and not variants[0].props:
                    variants.pop(0)
                variants.append(current)
            continue
        match = _PROP.match(line)
        if not match or current is None or not in_properties:
            continue
        prop = parse_type(match["type"], match["name"])
        flags = {f.strip() for f in (match["flags"] or "").split(",")}
        prop.read_only = "ReadOnly" in flags
        for key, value in re.findall(r"(minValue|maxValue): (-?\d+)", match["constraints"] or ""):
            setattr(prop, "min_value" if key == "minValue" else "max_value", int(value))
        if match["name"] == "Additional Properties Type":
            current.additional = prop
        else:
            current.props[match["name"]] = prop
    return TypeFile(resources, objects)


@cache
def vendored_types() -> dict[str, tuple[TypeFile, str]]:
    """'Type@version' -> (its file's parsed types, the file's name), over every vendored file."""
    found: dict[str, tuple[TypeFile, str]] = {}
    for path in sorted(TYPES_DIR.glob("*.md")):
        if path.name == "SOURCE.md":
            continue
        parsed = parse_types_md(path.read_text())
        for key in parsed.resources:
            found[key.lower()] = (parsed, path.name)
    return found


# --- the Bicep side -------------------------------------------------------------------------


@cache
def parse_bicep(text: str) -> dict[str, Any]:
    """pycep's tree of a Bicep text; parsing is slow (a Lark grammar), and the tests ask often.
    Callers read the tree and never change it."""
    return BicepParser().parse(text=text)


@dataclass
class Declared:
    """What a Bicep file declares, to tell a reference from a literal (pycep gives both as str)."""

    names: set[str]
    allowed: dict[str, list[Any]]  # parameter -> its @allowed values


def declarations(tree: dict[str, Any]) -> Declared:
    names: set[str] = set()
    allowed: dict[str, list[Any]] = {}
    for section in ("parameters", "variables", "resources", "modules"):
        names.update(tree.get(section, {}) or {})
    for name, param in (tree.get("parameters") or {}).items():
        for decorator in param.get("decorators", []):
            if decorator.get("type") == "allowed":
                allowed[name] = list(decorator.get("argument") or [])
    for resource in (tree.get("resources") or {}).values():
        loop = (resource.get("config") or {}).get("loop_type") or {}
        detail = loop.get("detail") or {}
        names.update(v for k, v in detail.items() if k in ("item_name", "index_name") and v)
    return Declared(names, allowed)


def resource_body(resource: dict[str, Any]) -> dict[str, Any]:
    """The body of a resource, through a loop and/or a condition."""
    config = resource.get("config") or {}
    while isinstance(config, dict) and "config" in config and ("condition" in config or "loop_type" in config):
        config = config["config"] or {}
    return config


def is_expression(value: Any) -> bool:
    """pycep writes an expression as {'operator' or 'function': {'type': ...}}; an object literal
    may have a key named operator too (a dimension's), whose value is then a plain string."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((key, inner),) = value.items()
    return key in ("operator", "function") and isinstance(inner, dict) and "type" in inner


@dataclass
class Finding:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class Checker:
    def __init__(self, where: str, declared: Declared, types: TypeFile) -> None:
        self.where = where
        self.declared = declared
        self.types = types
        self.findings: list[Finding] = []

    def fail(self, path: str, message: str) -> None:
        self.findings.append(Finding(f"{self.where} {path}", message))

    def candidates(self, value: Any) -> list[Any] | None:
        """The literal values an expression can take, or None when they cannot be known."""
        if isinstance(value, str) and value in self.declared.names:
            return list(self.declared.allowed[value]) if value in self.declared.allowed else None
        if is_expression(value) and value.get("operator", {}).get("type") == "conditional":
            operands = value["operator"]["operands"]
            branches = [self.candidates(operands["true_value"]), self.candidates(operands["false_value"])]
            return None if any(b is None for b in branches) else branches[0] + branches[1]  # type: ignore[operator]
        if is_expression(value):
            return None
        if isinstance(value, str) and "${" in value:
            return None  # an interpolated string: a string, but not a known one
        return [value]

    def check_object(self, obj: ObjectType | None, value: dict[str, Any], path: str, type_name: str) -> None:
        if obj is None:
            if value:
                self.fail(path, f"type {type_name} is not in the vendored type files (azure-types/)")
            return
        for key, item in value.items():
            key = key.strip("'")
            if path == "" and key in BICEP_KEYWORDS:
                continue
            prop = obj.props.get(key)
            where = f"{path}.{key}" if path else key
            if prop is None:
                if obj.additional is not None:
                    self.check_value(obj.additional, item, where)
                    continue
                self.fail(where, f"{obj.name} has no property {key!r}")
                continue
            if prop.read_only:
                self.fail(where, f"{key!r} is read-only on {obj.name}")
                continue
            self.check_value(prop, item, where)

    def check_value(self, prop: Prop, value: Any, path: str) -> None:
        element = Prop(**{**prop.__dict__, "array": False})
        for candidate in self.candidates(value) or []:
            if not prop.array:
                self.check_literal(prop, candidate, path)
            elif isinstance(candidate, list):
                for i, item in enumerate(candidate):
                    self.check_value(element, item, f"{path}[{i}]")
            elif candidate is not None:
                self.fail(path, f"an array is expected, not {candidate!r}")

    def check_literal(self, prop: Prop, value: Any, path: str) -> None:
        if value is None:
            return  # null: the property is left out
        if prop.kind == "ref":
            if isinstance(value, dict):
                self.check_object(self.types.objects.get(prop.ref), value, path, prop.ref)
            else:
                self.fail(path, f"an object ({prop.ref}) is expected, not {value!r}")
        elif prop.kind == "enum":
            if not isinstance(value, str):
                self.fail(path, f"a string is expected, not {value!r}")
            elif value not in prop.literals:
                self.fail(path, f"{value!r} is not one of {', '.join(prop.literals)}")
        elif prop.kind == "string" and not isinstance(value, str):
            self.fail(path, f"a string is expected, not {value!r}")
        elif prop.kind == "bool" and not isinstance(value, bool):
            self.fail(path, f"true or false is expected, not {value!r}")
        elif prop.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(path, f"a whole number is expected, not {value!r}")
            elif (prop.min_value is not None and value < prop.min_value) or (
                prop.max_value is not None and value > prop.max_value
            ):
                self.fail(path, f"{value} is outside {prop.min_value}..{prop.max_value}")


def check_bicep_text(text: str, where: str) -> list[Finding]:
    tree = parse_bicep(text)
    declared = declarations(tree)
    known = vendored_types()
    findings: list[Finding] = []
    for name, resource in (tree.get("resources") or {}).items():
        key = f"{resource['type']}@{resource.get('api_version')}"
        entry = known.get(key.lower())
        label = f"{where}: {name} ({key})"
        if entry is None:
            findings.append(Finding(label, "this type@version is not in Azure's type definitions (azure-types/)"))
            continue
        if resource.get("existing"):
            continue
        types, _ = entry
        body = resource_body(resource)
        variants = types.resources[next(k for k in types.resources if k.lower() == key.lower())]
        variant = pick_variant(variants, body.get("name"))
        if variant is None:
            findings.append(Finding(label, f"name {body.get('name')!r} is none of the type's variants"))
            continue
        checker = Checker(label, declared, types)
        checker.check_object(variant, body, "", variant.name)
        findings.extend(checker.findings)
    return findings


def pick_variant(variants: list[ObjectType], name: Any) -> ObjectType | None:
    """A discriminated resource (sites/config) has a body per name; others have one."""
    if len(variants) == 1 and variants[0].props.get("name", Prop("name", "string")).kind != "enum":
        return variants[0]
    for variant in variants:
        if name in variant.props["name"].literals:
            return variant
    return variants[0] if len(variants) == 1 else None


def check_tree(root: Path) -> list[Finding]:
    findings: list[Finding] = []
    for path in sorted(root.rglob("*.bicep")):
        findings.extend(check_bicep_text(path.read_text(), str(path.relative_to(root))))
    return findings
