"""The Bicep against Azure's type definitions and the Flex Consumption rules, in both network
settings; and the checks themselves catch what they are for (a checker that finds nothing on a
broken template would pass anything)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from azure_types import TYPES_DIR, check_bicep_text, check_tree, parse_bicep, parse_types_md, vendored_types
from flex_rules import FLEX_REGIONS, RULES, check_rules
from render_variant import render, render_tree
from trim_types import trim

INFRA = Path(__file__).resolve().parents[1]
FUNCTION_APP = (INFRA / "modules" / "functionapp.bicep").read_text()
STORAGE = (INFRA / "modules" / "storage.bicep").read_text()


@pytest.fixture(scope="module", params=["off", "on"])
def variant(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """infra/ as deployed with VNET_ENABLED off (the default) and on."""
    return render_tree(request.param == "on", tmp_path_factory.mktemp(f"vnet-{request.param}") / "infra")


def test_every_resource_property_and_value_is_in_azures_types(variant: Path) -> None:
    findings = check_tree(variant)
    assert [str(f) for f in findings] == []


def test_the_flex_consumption_rules_hold(variant: Path) -> None:
    assert check_rules(variant) == []


def test_the_checked_tree_declares_the_resources_it_should() -> None:
    """The check walks every module: the scan is not empty."""
    declared = {
        f"{r['type']}@{r['api_version']}"
        for path in INFRA.rglob("*.bicep")
        for r in (parse_bicep(path.read_text()).get("resources") or {}).values()
    }
    assert len(declared) >= 20 and {t.lower() for t in declared} <= set(vendored_types())


def test_each_rule_says_where_it_comes_from() -> None:
    assert len(RULES) >= 8
    for rule in RULES:
        assert rule.says and re.search(r"learn\.microsoft\.com|Azure-Samples/|Azure/|microsoft/", rule.source), (
            rule.name
        )


# --- the checker catches what it is for -------------------------------------------------------


def findings_for(text: str) -> list[str]:
    return [str(f) for f in check_bicep_text(text, "t.bicep")]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("allowSharedKeyAccess: false", "allowSharedKeyAcess: false", "has no property 'allowSharedKeyAcess'"),
        ("accessTier: 'Hot'", "accessTier: 'Hot'\n    primaryLocation: 'westus'", "'primaryLocation' is read-only"),
        ("minimumTlsVersion: 'TLS1_2'", "minimumTlsVersion: 'TLS1.2'", "'TLS1.2' is not one of"),
        ("privateNetwork ? 'Disabled' : 'Enabled'", "privateNetwork ? 'Off' : 'Enabled'", "'Off' is not one of"),
        ("days: 7 }", "days: 3650 }", "3650 is outside 1..365"),
        ("supportsHttpsTrafficOnly: true", "supportsHttpsTrafficOnly: 'yes'", "true or false is expected"),
        ("storageAccounts@2023-05-01' = {", "storageAccounts@2099-01-01' = {", "not in Azure's type definitions"),
    ],
)
def test_the_type_check_catches_a_wrong_property_value_or_version(old: str, new: str, expected: str) -> None:
    assert old in STORAGE
    assert findings_for(STORAGE) == []
    assert any(expected in f for f in findings_for(STORAGE.replace(old, new, 1)))


def test_a_parameter_is_checked_through_its_allowed_values() -> None:
    rbac = (INFRA / "modules" / "rbac.bicep").read_text()
    broken = rbac.replace("@allowed(['User', 'ServicePrincipal'])", "@allowed(['User', 'Pipeline'])")
    assert findings_for(rbac) == [] and any("'Pipeline' is not one of" in f for f in findings_for(broken))


def test_the_flex_rules_catch_ftps_state_and_other_plans_settings(tmp_path: Path) -> None:
    tree = render_tree(False, tmp_path / "infra")
    app = tree / "modules" / "functionapp.bicep"
    app.write_text(
        FUNCTION_APP.replace(
            "minTlsVersion: '1.2'",
            "minTlsVersion: '1.2'\n      ftpsState: 'Disabled'\n      linuxFxVersion: 'Python|3.11'",
        )
    )
    found = check_rules(tree)
    assert any(f.startswith("[no-ftps-state]") for f in found)
    assert any("siteConfig.linuxFxVersion" in f for f in found)


@pytest.mark.parametrize(
    ("module", "old", "new", "rule"),
    [
        (
            "functionapp.bicep",
            "SECRETS_SOURCE: 'keyvault'",
            "FUNCTIONS_WORKER_RUNTIME: 'python'",
            "[no-other-plans-app-settings]",
        ),
        ("functionapp.bicep", "version: '3.11'", "version: '3.9'", "[python-version]"),
        ("functionapp.bicep", "tier: 'FlexConsumption'", "tier: 'Dynamic'", "[flex-plan]"),
        (
            "network.bicep",
            "serviceName: 'Microsoft.App/environments'",
            "serviceName: 'Microsoft.Web/serverFarms'",
            "[subnet-delegation]",
        ),
    ],
)
def test_the_flex_rules_catch_other_plans_in_the_modules(
    tmp_path: Path, module: str, old: str, new: str, rule: str
) -> None:
    tree = render_tree(True, tmp_path / "infra")
    path = tree / "modules" / module
    assert old in path.read_text() and check_rules(tree) == []
    path.write_text(path.read_text().replace(old, new, 1))
    assert any(f.startswith(rule) for f in check_rules(tree))


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ("@minValue(40)", "@minValue(1)", "[max-instances]"),
        ("@allowed([512, 2048, 4096])", "@allowed([512, 1024, 2048])", "[instance-memory]"),
        ("  'westus3'\n", "  'westus3'\n  'mexicocentral'\n", "[regions]"),
    ],
)
def test_the_flex_rules_catch_bad_main_parameters(tmp_path: Path, old: str, new: str, rule: str) -> None:
    tree = render_tree(False, tmp_path / "infra")
    main = tree / "main.bicep"
    assert old in main.read_text()
    main.write_text(main.read_text().replace(old, new, 1))
    assert any(f.startswith(rule) for f in check_rules(tree))


def test_regions_offered_are_flex_regions_only() -> None:
    allowed = next(
        d["argument"]
        for d in parse_bicep((INFRA / "main.bicep").read_text())["parameters"]["location"]["decorators"]
        if d["type"] == "allowed"
    )
    assert len(allowed) >= 20 and set(allowed) <= FLEX_REGIONS
    assert "eastus2euap" not in allowed  # a canary region: not for ordinary subscriptions


# --- the vendored files ------------------------------------------------------------------------


def test_the_vendored_type_files_are_trimmed_and_say_their_source() -> None:
    source = (TYPES_DIR / "SOURCE.md").read_text()
    assert "Azure/bicep-types-az" in source and "MIT" in source and "trim_types.py" in source
    files = sorted(p for p in TYPES_DIR.glob("*.md") if p.name != "SOURCE.md")
    assert len(files) >= 10
    for path in files:
        text = path.read_text()
        assert path.name in source, f"SOURCE.md does not list {path.name}"
        assert re.search(rf"{path.name} \| generated/\S+/types\.md \| [0-9a-f]{{40}} \|", source), path.name
        assert trim(text) == text, f"{path.name} is not in trim_types.py's form"
        assert len(text) < 20_000, f"{path.name} is not trimmed"
        assert parse_types_md(text).resources, path.name


def test_trimming_keeps_the_named_sections_and_drops_descriptions() -> None:
    full = (
        "# Microsoft.X @ 2024-01-01\n\n## Resource Microsoft.X/things@2024-01-01\n* **Valid Scope(s)**: ResourceGroup\n"
        "### Properties\n* **name**: string (Required, DeployTimeConstant): The resource name\n"
        "* **properties**: [ThingProperties](#thingproperties): Properties.\n\n"
        "## Other\n### Properties\n* **a**: int\n\n"
        "## ThingProperties\n### Properties\n* **size**: int {minValue: 1, maxValue: 9}: How big,\nover two lines.\n"
        "* **state**: 'On' | 'Off' | string (ReadOnly): The state.\n"
    )
    trimmed = trim(full, ["Resource Microsoft.X/things@2024-01-01", "ThingProperties"])
    assert "## Other" not in trimmed and "description" not in trimmed and "over two lines" not in trimmed
    assert "* **size**: int {minValue: 1, maxValue: 9}\n" in trimmed
    assert "* **state**: 'On' | 'Off' | string (ReadOnly)\n" in trimmed
    parsed = parse_types_md(trimmed)
    size = parsed.objects["ThingProperties"].props["size"]
    assert (size.min_value, size.max_value) == (1, 9) and parsed.objects["ThingProperties"].props["state"].read_only


def test_rendering_a_variant_decides_each_conditional() -> None:
    line = "publicNetworkAccess: privateNetwork ? 'Disabled' : 'Enabled' // checkov:skip=..."
    assert render(line, True).startswith("publicNetworkAccess: 'Disabled'")
    assert render(line, False).startswith("publicNetworkAccess: 'Enabled'")
    assert render("param vnetEnabled bool = false", True) == "param vnetEnabled bool = true"
