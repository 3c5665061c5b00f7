"""`azd up` as a new user, or a pipeline, runs it: what it packages, the principal it grants roles
to, a second `azd up` after `azd down`, API versions, the private network, and README's word on it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pathspec
import pytest
import yaml
from azure_types import parse_bicep, resource_body

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"


def tree(name: str) -> dict[str, Any]:
    return parse_bicep((INFRA / name).read_text())


def readme_section(title: str) -> str:
    """The README section of that title, at whatever heading level, to the next heading of its
    level or above (its subsections included); lines in fenced code blocks are never headings."""
    lines = (REPO / "README.md").read_text().splitlines()
    in_code, level, found = False, 0, []
    for line in lines:
        if line.startswith("```"):
            in_code = not in_code
        heading = None if in_code else re.match(r"(#+) (.*)", line)
        if heading and level and len(heading[1]) <= level:
            break
        if level:
            found.append(line)
        elif heading and heading[2] == title:
            level = len(heading[1])
    assert level, f"README has no section {title!r}"
    return "\n".join(found)


# --- what azd packages -------------------------------------------------------------------------


def funcignore() -> pathspec.PathSpec:
    return pathspec.PathSpec.from_lines("gitignore", (REPO / ".funcignore").read_text().splitlines())


@pytest.mark.parametrize(
    "path",
    [
        ".venv-iac/bin/python",
        ".venv/lib/python3.11/site-packages/x.py",
        ".azure/prod/.env",
        "shared/__pycache__/settings.cpython-311.pyc",
        "shared/run/__pycache__/x.pyc",
        "stray.pyc",
        ".python_packages/lib/site-packages/x.py",
        ".coverage",
        ".coverage.host.1234.567",
        ".github/workflows/azure-dev.yml",
        "infra/main.bicep",
        "tests/unit/test_x.py",
        "local.settings.json",
    ],
)
def test_funcignore_keeps_out_what_the_app_does_not_run(path: str) -> None:
    assert funcignore().match_file(path), path


@pytest.mark.parametrize(
    "path", ["function_app.py", "host.json", "requirements.txt", "shared/settings.py", "shared/run/telemetry.py"]
)
def test_funcignore_keeps_the_app(path: str) -> None:
    assert (REPO / path).exists() and not funcignore().match_file(path), path


def test_the_app_code_needs_nothing_funcignore_leaves_out() -> None:
    """Every module the app imports lives in shared/ or function_app.py, which are packaged."""
    spec = funcignore()
    sources = [p.relative_to(REPO).as_posix() for p in (REPO / "shared").rglob("*.py")]
    assert sources and not [s for s in sources if spec.match_file(s)]


# --- a pipeline's principal --------------------------------------------------------------------


def test_the_pipeline_deploys_with_federated_credentials_as_a_service_principal() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "azure-dev.yml").read_text())
    assert workflow["permissions"]["id-token"] == "write"
    (job,) = workflow["jobs"].values()
    env = job["env"]
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID", "AZURE_ENV_NAME", "AZURE_LOCATION"):
        assert env[name] == f"${{{{ vars.{name} }}}}", name
    steps = job["steps"]
    login = next(s for s in steps if str(s.get("uses", "")).startswith("azure/login@"))
    assert set(login["with"]) == {"client-id", "tenant-id", "subscription-id"}  # OIDC: no secret
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "--federated-credential-provider github" in runs
    assert "azd provision --no-prompt" in runs and "azd deploy --no-prompt" in runs
    assert runs.index("azd provision") < runs.index("azd deploy")
    # principalType: the pipeline's principal is a service principal, and main.bicep takes it from there.
    allowed = next(
        d["argument"] for d in tree("main.bicep")["parameters"]["principalType"]["decorators"] if d["type"] == "allowed"
    )
    assert env["AZURE_PRINCIPAL_TYPE"] == "ServicePrincipal" and env["AZURE_PRINCIPAL_TYPE"] in allowed
    mapped = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]["principalType"]["value"]
    assert mapped == "${AZURE_PRINCIPAL_TYPE=User}"
    assert "userPrincipalType: principalType" in (INFRA / "main.bicep").read_text()
    # the environment values azd pipeline config copies to the repository are the ones the workflow reads
    pipeline = yaml.safe_load((REPO / "azure.yaml").read_text())["pipeline"]
    assert pipeline["provider"] == "github" and "VNET_ENABLED" in pipeline["variables"]
    assert all(env[name].startswith(f"${{{{ vars.{name}") for name in pipeline["variables"])


# --- a second azd up ---------------------------------------------------------------------------


def test_readme_says_what_a_second_azd_up_after_azd_down_needs() -> None:
    section = readme_section("Deploying to Azure")
    assert "purge protection" in section
    assert "az keyvault recover" in section  # the soft-deleted vault of the same name
    assert "azd env new" in section and "KEY_VAULT_NAME" in section  # or another name
    assert "azd down --purge" in section
    vault = resource_body(tree("modules/keyvault.bicep")["resources"]["vault"])["properties"]
    assert vault["enablePurgeProtection"] is True and vault["softDeleteRetentionInDays"] == 90


# --- API versions and checkov's reasons -------------------------------------------------------

# A preview API version only where no GA one does the job, with why.
PREVIEW_ALLOWED = {
    "Microsoft.Insights/diagnosticSettings": "no GA version takes categoryGroup (the vault's audit group)",
}


def test_no_preview_api_version_where_a_ga_one_serves() -> None:
    for path in INFRA.rglob("*.bicep"):
        for name, resource in (parse_bicep(path.read_text()).get("resources") or {}).items():
            version = resource.get("api_version") or ""
            if "preview" in version:
                assert resource["type"] in PREVIEW_ALLOWED, f"{path.name}: {name} uses {resource['type']}@{version}"


def test_the_queue_logging_skip_names_a_diagnostic_setting_that_exists() -> None:
    text = (INFRA / "modules" / "storage.bicep").read_text()
    reason = re.search(r"checkov:skip=CKV_AZURE_33: (.*)", text)
    assert reason and "queueLogs" in reason[1]
    resources = tree("modules/storage.bicep")["resources"]
    logs = resources["queueLogs"]
    assert logs["type"] == "Microsoft.Insights/diagnosticSettings"
    body = resource_body(logs)
    assert body["scope"] == "queueService" and body["properties"]["workspaceId"] == "logAnalyticsWorkspaceId"
    categories = {entry["category"] for entry in body["properties"]["logs"] if entry["enabled"] is True}
    assert {"StorageWrite", "StorageDelete"} <= categories


# --- the private network -----------------------------------------------------------------------


def test_vnet_enabled_is_an_azd_setting_off_by_default() -> None:
    main = tree("main.bicep")
    assert main["parameters"]["vnetEnabled"]["type"] == "bool" and main["parameters"]["vnetEnabled"]["default"] is False
    mapped = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]["vnetEnabled"]["value"]
    assert mapped == "${VNET_ENABLED=false}"
    network = main["modules"]["network"]
    assert network["detail"]["path"] == "modules/network.bicep" and network["config"]["condition"] == "vnetEnabled"
    text = (INFRA / "main.bicep").read_text()
    assert "appSubnetId: vnetEnabled ? network.outputs.appSubnetId : ''" in text
    assert text.count("privateNetwork: vnetEnabled") == 2  # storage and the vault


def test_the_network_has_the_flex_subnet_and_private_endpoints_for_blob_queue_and_vault() -> None:
    text = (INFRA / "modules" / "network.bicep").read_text()
    resources = parse_bicep(text)["resources"]
    subnet = resource_body(resources["appSubnet"])["properties"]
    assert subnet["delegations"][0]["properties"]["serviceName"] == "Microsoft.App/environments"
    endpoints = parse_bicep(text)["variables"]["endpoints"]["value"]
    assert {(e["groupId"], e["zone"]) for e in endpoints} == {
        ("blob", "privatelink.blob.${environment().suffixes.storage}"),
        ("queue", "privatelink.queue.${environment().suffixes.storage}"),
        ("vault", "privatelink.vaultcore.azure.net"),
    }
    kinds = {r["type"] for r in resources.values() if not r.get("existing")}
    assert kinds == {
        "Microsoft.Network/virtualNetworks",
        "Microsoft.Network/virtualNetworks/subnets",
        "Microsoft.Network/privateDnsZones",
        "Microsoft.Network/privateDnsZones/virtualNetworkLinks",
        "Microsoft.Network/privateEndpoints",
        "Microsoft.Network/privateEndpoints/privateDnsZoneGroups",
    }
    for name in ("zones", "zoneLinks", "privateEndpoints", "zoneGroups"):  # one each per endpoint
        assert resources[name]["config"]["loop_type"]["detail"]["array_name"] == "endpoints", name


@pytest.mark.parametrize(("module", "resource"), [("storage.bicep", "account"), ("keyvault.bicep", "vault")])
def test_public_network_access_is_off_on_storage_and_vault_with_the_private_network(module: str, resource: str) -> None:
    properties = resource_body(tree(f"modules/{module}")["resources"][resource])["properties"]
    for key, on, off in (("publicNetworkAccess", "Disabled", "Enabled"),):
        operands = properties[key]["operator"]["operands"]
        assert (operands["condition"], operands["true_value"], operands["false_value"]) == ("privateNetwork", on, off)
    acl = properties["networkAcls"]["defaultAction"]["operator"]["operands"]
    assert (acl["true_value"], acl["false_value"]) == ("Deny", "Allow")


def test_the_app_joins_the_subnet_and_keeps_its_public_endpoint_for_event_grid() -> None:
    properties = resource_body(tree("modules/functionapp.bicep")["resources"]["app"])["properties"]
    assert properties["publicNetworkAccess"] == "Enabled"  # Event Grid delivers to the webhook there
    assert "virtualNetworkSubnetId" in properties


def test_readme_describes_the_private_network_and_how_event_grid_still_reaches_the_function() -> None:
    section = readme_section("Deploying to Azure")
    assert "VNET_ENABLED" in section and "Microsoft.App/environments" in section
    assert "private endpoint" in section and "webhook" in section and "system topic" in section


def test_readme_lists_prerequisites_regions_and_first_deploy_time() -> None:
    section = readme_section("Deploying to Azure")
    for link in ("aka.ms/azd-install", "learn.microsoft.com/cli/azure/install-azure-cli", "azure-functions-core-tools"):
        assert link in section, link
    regions = next(
        d["argument"] for d in tree("main.bicep")["parameters"]["location"]["decorators"] if d["type"] == "allowed"
    )
    assert all(region in section for region in regions)
    assert re.search(r"minutes", section) and "estimate" in section
