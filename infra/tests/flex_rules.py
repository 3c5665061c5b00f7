"""Flex Consumption rules the resource types do not carry, each with where it comes from.

The type definitions (azure_types.py) say what a Microsoft.Web/sites body may hold on any plan; a
Flex Consumption site refuses some of it, and takes only some values of the rest. Each rule below
is checked against every .bicep under infra/ (test_types.py); `check_rules` returns the findings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure_types import is_expression, parse_bicep, resource_body

LEARN_FLEX = "https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan (Considerations, Instance memory)"
LEARN_SETTINGS = (
    "https://learn.microsoft.com/azure/azure-functions/functions-app-settings"
    " (settings marked unsupported on Flex Consumption)"
)
SAMPLE = (
    "Azure-Samples/functions-quickstart-python-http-azd infra/main.bicep at 0bb0f1062c51"
    " (Microsoft's Flex azd template)"
)

# Regions that offer Flex Consumption: Microsoft's Flex azd template's own @allowed list (SAMPLE),
# less eastus2euap, a canary region ordinary subscriptions cannot use. `az functionapp
# list-flexconsumption-locations` prints today's list; a region added there can be added here.
FLEX_REGIONS = frozenset(
    [
        "australiaeast",
        "australiasoutheast",
        "brazilsouth",
        "canadacentral",
        "centralindia",
        "centralus",
        "eastasia",
        "eastus",
        "eastus2",
        "francecentral",
        "germanywestcentral",
        "italynorth",
        "japaneast",
        "koreacentral",
        "northcentralus",
        "northeurope",
        "norwayeast",
        "southafricanorth",
        "southcentralus",
        "southeastasia",
        "southindia",
        "spaincentral",
        "swedencentral",
        "uaenorth",
        "uksouth",
        "ukwest",
        "westcentralus",
        "westeurope",
        "westus",
        "westus2",
        "westus3",
    ]
)
INSTANCE_MEMORY_MB = frozenset({512, 2048, 4096})
MAX_INSTANCES = (40, 1000)
PYTHON_VERSIONS = frozenset({"3.10", "3.11", "3.12"})
# siteConfig properties that belong to other plans: Flex takes the runtime from functionAppConfig
# and scales by functionAppConfig.scaleAndConcurrency.
SITE_CONFIG_NOT_ON_FLEX = frozenset(
    {
        "linuxFxVersion",
        "alwaysOn",
        "use32BitWorkerProcess",
        "pythonVersion",
        "javaVersion",
        "netFrameworkVersion",
        "powerShellVersion",
        "nodeVersion",
        "functionAppScaleLimit",
        "preWarmedInstanceCount",
        "minimumElasticInstanceCount",
    }
)
APP_SETTINGS_NOT_ON_FLEX = frozenset(
    {
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_EXTENSION_VERSION",
        "WEBSITE_RUN_FROM_PACKAGE",
        "WEBSITE_CONTENTSHARE",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
        "WEBSITE_CONTENTOVERVNET",
        "SCM_DO_BUILD_DURING_DEPLOYMENT",
        "ENABLE_ORYX_BUILD",
        "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
        "WEBSITE_NODE_DEFAULT_VERSION",
    }
)


@dataclass
class Templates:
    """Every .bicep under a folder, parsed, by its path relative to that folder."""

    trees: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, root: Path) -> Templates:
        return cls({str(p.relative_to(root)): parse_bicep(p.read_text()) for p in sorted(root.rglob("*.bicep"))})

    def resources(self, resource_type: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for path, tree in self.trees.items():
            for name, resource in (tree.get("resources") or {}).items():
                if resource["type"] == resource_type and not resource.get("existing"):
                    yield path, name, resource_body(resource)

    def main_param(self, name: str) -> dict[str, Any]:
        return (self.trees["main.bicep"].get("parameters") or {}).get(name) or {}


def decorator(param: dict[str, Any], kind: str) -> Any:
    return next((d.get("argument") for d in param.get("decorators", []) if d.get("type") == kind), None)


def literal_values(value: Any, param_of: Callable[[str], dict[str, Any]]) -> list[Any]:
    """The values a property can take: a literal, both branches of a conditional, or a parameter's
    @allowed values (or its default, when it has no @allowed)."""
    if isinstance(value, str) and param_of(value):
        param = param_of(value)
        allowed = decorator(param, "allowed")
        if allowed is not None:
            return list(allowed)
        return [] if param.get("default") is None else [param["default"]]  # a module's parameter: known in main.bicep
    if is_expression(value) and value.get("operator", {}).get("type") == "conditional":
        operands = value["operator"]["operands"]
        return literal_values(operands["true_value"], param_of) + literal_values(operands["false_value"], param_of)
    return [] if is_expression(value) else [value]


@dataclass(frozen=True)
class Rule:
    name: str
    says: str
    source: str
    check: Callable[[Templates], list[str]]


def _site_configs(templates: Templates) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, name, body in templates.resources("Microsoft.Web/sites"):
        config = (body.get("properties") or {}).get("siteConfig") or {}
        yield f"{path}: {name}", config if isinstance(config, dict) else {}


def no_ftps_state(templates: Templates) -> list[str]:
    return [
        f"{where}: sets siteConfig.ftpsState" for where, config in _site_configs(templates) if "ftpsState" in config
    ]


def no_other_plans_site_config(templates: Templates) -> list[str]:
    return [
        f"{where}: sets siteConfig.{key}"
        for where, config in _site_configs(templates)
        for key in sorted(SITE_CONFIG_NOT_ON_FLEX & set(config))
    ]


def no_other_plans_app_settings(templates: Templates) -> list[str]:
    return [
        f"{path}: {name} sets {key}"
        for path, name, body in templates.resources("Microsoft.Web/sites/config")
        for key in sorted(
            APP_SETTINGS_NOT_ON_FLEX
            & set((body.get("properties") or {}) if isinstance(body.get("properties"), dict) else {})
        )
    ]


def flex_plan(templates: Templates) -> list[str]:
    found = []
    for path, name, body in templates.resources("Microsoft.Web/serverfarms"):
        sku, reserved = body.get("sku") or {}, (body.get("properties") or {}).get("reserved")
        if sku != {"name": "FC1", "tier": "FlexConsumption"} or reserved is not True:
            found.append(f"{path}: {name} is not FC1/FlexConsumption with reserved: true (Linux)")
    return found


def _scale(templates: Templates) -> Iterator[tuple[str, str, Any, Callable[[str], dict[str, Any]]]]:
    for path, name, body in templates.resources("Microsoft.Web/sites"):
        scale = ((body.get("properties") or {}).get("functionAppConfig") or {}).get("scaleAndConcurrency") or {}
        params = templates.trees[path].get("parameters") or {}
        for key in ("instanceMemoryMB", "maximumInstanceCount"):
            if key in scale:
                yield f"{path}: {name}", key, scale[key], lambda n, p=params: p.get(n) or {}


def instance_memory(templates: Templates) -> list[str]:
    found = [
        f"{where}: instanceMemoryMB may be {value}"
        for where, key, value, params in _scale(templates)
        if key == "instanceMemoryMB"
        for value in literal_values(value, params)
        if value not in INSTANCE_MEMORY_MB
    ]
    main = templates.main_param("instanceMemoryMB")
    found += [
        f"main.bicep: instanceMemoryMB allows {v}"
        for v in decorator(main, "allowed") or []
        if v not in INSTANCE_MEMORY_MB
    ]
    if not decorator(main, "allowed"):
        found.append("main.bicep: instanceMemoryMB has no @allowed list")
    return found


def max_instances(templates: Templates) -> list[str]:
    low, high = MAX_INSTANCES
    found = [
        f"{where}: maximumInstanceCount may be {value}"
        for where, key, value, params in _scale(templates)
        if key == "maximumInstanceCount"
        for value in literal_values(value, params)
        if not low <= value <= high
    ]
    main = templates.main_param("maximumInstanceCount")
    least, most = decorator(main, "min_value"), decorator(main, "max_value")
    if least is None or most is None or least < low or most > high:
        found.append(f"main.bicep: maximumInstanceCount admits {least}..{most}, not within {low}..{high}")
    return found


def regions(templates: Templates) -> list[str]:
    allowed = decorator(templates.main_param("location"), "allowed")
    if not allowed:
        return ["main.bicep: location has no @allowed list: azd would offer every region"]
    return [f"main.bicep: location allows {r}, which has no Flex Consumption" for r in allowed if r not in FLEX_REGIONS]


def python_runtime(templates: Templates) -> list[str]:
    found = []
    for path, name, body in templates.resources("Microsoft.Web/sites"):
        runtime = ((body.get("properties") or {}).get("functionAppConfig") or {}).get("runtime") or {}
        if runtime.get("name") == "python" and runtime.get("version") not in PYTHON_VERSIONS:
            found.append(f"{path}: {name} runs python {runtime.get('version')!r}")
    return found


def subnet_delegation(templates: Templates) -> list[str]:
    joins = [
        n
        for _, n, b in templates.resources("Microsoft.Web/sites")
        if "virtualNetworkSubnetId" in (b.get("properties") or {})
    ]
    services = {
        (d.get("properties") or {}).get("serviceName")
        for _, _, body in templates.resources("Microsoft.Network/virtualNetworks/subnets")
        for d in (body.get("properties") or {}).get("delegations") or []
        if isinstance(d, dict)
    }
    if joins and "Microsoft.App/environments" not in services:
        return [f"{', '.join(joins)} joins a subnet, and no subnet is delegated to Microsoft.App/environments"]
    return [
        f"a subnet is delegated to {s}, which Flex Consumption does not join"
        for s in services - {"Microsoft.App/environments"}
    ]


RULES: tuple[Rule, ...] = (
    Rule(
        "no-ftps-state",
        "A Flex Consumption site takes no siteConfig.ftpsState (there is no FTP): ARM refuses it, error 51021.",
        "Azure/terraform-azurerm-avm-res-web-site issues #283, #345, #360; microsoft/azure-pipelines-tasks #21032; "
        + SAMPLE
        + " sets none",
        no_ftps_state,
    ),
    Rule(
        "no-other-plans-site-config",
        "No siteConfig.linuxFxVersion, alwaysOn, language versions or plan-scale limits: Flex takes the runtime "
        "from functionAppConfig.runtime and its scale from functionAppConfig.scaleAndConcurrency.",
        LEARN_FLEX + "; " + SAMPLE,
        no_other_plans_site_config,
    ),
    Rule(
        "no-other-plans-app-settings",
        "No app settings Flex Consumption does not support (FUNCTIONS_WORKER_RUNTIME, WEBSITE_RUN_FROM_PACKAGE, ...).",
        LEARN_SETTINGS,
        no_other_plans_app_settings,
    ),
    Rule("flex-plan", "The plan is FC1, tier FlexConsumption, Linux (reserved: true).", SAMPLE, flex_plan),
    Rule("instance-memory", "instanceMemoryMB is 512, 2048 or 4096.", LEARN_FLEX, instance_memory),
    Rule(
        "max-instances",
        "maximumInstanceCount is 40 to 1000: 1000 is the plan's ceiling, and some regions refuse less than 40.",
        LEARN_FLEX + "; the maximum instance count setting (az functionapp scale config set --maximum-instance-count)",
        max_instances,
    ),
    Rule(
        "regions",
        "azd offers only regions that have Flex Consumption (location's @allowed).",
        SAMPLE + "; az functionapp list-flexconsumption-locations",
        regions,
    ),
    Rule(
        "python-version",
        "The Python runtime is 3.10, 3.11 or 3.12.",
        LEARN_FLEX + " (supported language stacks)",
        python_runtime,
    ),
    Rule(
        "subnet-delegation",
        "A Flex Consumption app joins a subnet delegated to Microsoft.App/environments"
        " (not Microsoft.Web/serverFarms).",
        "https://learn.microsoft.com/azure/azure-functions/flex-consumption-how-to (virtual network integration); "
        "Azure-Samples/functions-quickstart-python-http-azd infra/app/vnet.bicep",
        subnet_delegation,
    ),
)


def check_rules(root: Path) -> list[str]:
    templates = Templates.load(root)
    return [f"[{rule.name}] {finding}" for rule in RULES for finding in rule.check(templates)]
