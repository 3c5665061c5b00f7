"""Checks of infra/ and azure.yaml that need no Azure: they run in their own venv (make iac).

The Bicep is parsed with pycep; the code is read as text (ast), so nothing here imports the app.
"""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pycep import BicepParser

REPO = Path(__file__).resolve().parents[2]  # infra/tests/ -> the repo
INFRA = REPO / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

# Settings the Functions host itself reads (not the app's code), which the Bicep may set.
HOST_SETTINGS = {
    "AzureWebJobsStorage__credential",
    "AZURE_CLIENT_ID",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "PYTHON_ENABLE_OPENTELEMETRY",  # read by the Python worker (see test_telemetry_is_opentelemetry_end_to_end)
}
# Read by the code but deliberately not deployed: a test and simulator override, the flag App
# Service itself sets when its authentication is turned on, and tuning knobs whose defaults live
# in shared/settings.py (an operator adds them as app settings to change them).
NOT_DEPLOYED = {
    "SENDGRID_API_BASE_URL",
    "WEBSITE_AUTH_ENABLED",
    "SENDGRID_MAX_BATCH_BYTES",
    "SENDGRID_JOB_WAIT_SECONDS",
    "RUN_DEADLINE_SECONDS",
    "EXPORT_SETTLE_SECONDS",
    "MAX_RECORD_BYTES",
    "SENDGRID_ERRORS_FILE_HOSTS",
    "SENDGRID_BULK_IMPORT",
    "SENDGRID_BULK_IMPORT_THRESHOLD",
}

# Azure's built-in roles, name -> id, as "Azure built-in roles" (learn.microsoft.com,
# role-based-access-control/built-in-roles: storage, security, monitor) lists them. Every role
# the Bicep assigns must be one of these under its own name: a typo in an id cannot deploy.
BUILTIN_ROLES = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}
ROLE_IDS = BUILTIN_ROLES
# Each data-plane call the code makes (an SDK method, found in the source), and the roles that allow it.
DATA_PLANE = {
    "list_blobs": ("blob", {"Storage Blob Data Owner", "Storage Blob Data Contributor"}),
    "download_blob": ("blob", {"Storage Blob Data Owner", "Storage Blob Data Contributor"}),
    "upload_blob": ("blob", {"Storage Blob Data Owner", "Storage Blob Data Contributor"}),
    "delete_blob": ("blob", {"Storage Blob Data Owner", "Storage Blob Data Contributor"}),
    "acquire_lease": ("blob", {"Storage Blob Data Owner", "Storage Blob Data Contributor"}),
    "set_blob_metadata": ("blob", {"Storage Blob Data Owner", "Storage Blob Data Contributor"}),
    "get_blob_properties": ("blob", {"Storage Blob Data Owner", "Storage Blob Data Contributor"}),
    "send_message": ("queue", {"Storage Queue Data Contributor"}),
    "create_queue": ("queue", {"Storage Queue Data Contributor"}),
    "get_secret": ("vault", {"Key Vault Secrets User"}),
}


@cache
def parsed(path: Path) -> dict[str, Any]:
    return BicepParser().parse(text=path.read_text())


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses_and_describes_every_parameter(path):
    tree = parsed(path)
    undocumented = [
        name
        for name, param in tree.get("parameters", {}).items()
        if not any(d.get("type") == "description" for d in param.get("decorators", []))
    ]
    assert undocumented == []


# A skip trailing a property line must concern that property; these are the ones that do.
SKIP_ON_PROPERTY = {
    "clientCertEnabled": "CKV_AZURE_17",
    "publicNetworkAccess": {"CKV_AZURE_222", "CKV_AZURE_59", "CKV_AZURE_189"},
    "defaultAction": {"CKV_AZURE_35", "CKV_AZURE_109"},
    "name": "CKV_AZURE_206",  # the storage SKU's name
}


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_each_checkov_skip_sits_on_the_line_it_concerns(path):
    """A skip either stands on a line of its own (it concerns the block it is in) or trails the
    property it concerns: never an unrelated line, such as an app setting."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        found = re.search(r"checkov:skip=(CKV_[A-Z0-9_]+)", line)
        code = line.split("//", 1)[0].strip()
        if not found or not code:
            continue
        key = code.split(":", 1)[0].strip()
        allowed = SKIP_ON_PROPERTY.get(key, ())
        allowed = {allowed} if isinstance(allowed, str) else allowed
        where = f"{path.name}:{number}"
        assert found.group(1) in allowed, f"{where}: {found.group(1)} trails '{key}', which it does not concern"


def test_main_is_at_subscription_scope_with_a_resource_group_and_a_token():
    text = (INFRA / "main.bicep").read_text()
    assert parsed(INFRA / "main.bicep")["globals"]["scope"]["value"] == "subscription"
    assert "Microsoft.Resources/resourceGroups" in text
    assert "var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))" in text
    assert "loadJsonContent('./abbreviations.json')" in text
    outputs = parsed(INFRA / "main.bicep")["outputs"]
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", name) for name in outputs), list(outputs)
    assert {"AZURE_FUNCTION_APP_NAME", "KEY_VAULT_NAME", "AZURE_STORAGE_ACCOUNT_NAME", "FUNCTION_APP_URL"} <= set(
        outputs
    )


def settings_code_reads() -> set[str]:
    """Every app setting name the code reads, found in shared/settings.py and function_app.py."""
    source = (REPO / "shared" / "settings.py").read_text()
    tree = ast.parse(source)
    names: set[str] = set()
    suffixes: tuple[str, ...] = ()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "STORAGE_SUFFIXES" for t in node.targets):
            suffixes = tuple(ast.literal_eval(node.value))
        is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
        if is_text and re.fullmatch(r"(AzureWebJobsStorage|[A-Z][A-Z0-9_]{3,})", node.value):
            names.add(node.value)
    assert suffixes, "shared/settings.py defines STORAGE_SUFFIXES"
    for storage in ("EXPORT_STORAGE", "AzureWebJobsStorage"):
        names.update(storage + suffix for suffix in suffixes)
    app = (REPO / "function_app.py").read_text()
    names.update(re.findall(r'"%([A-Za-z_]+)%"', app))
    names.update(re.findall(r'connection="([A-Za-z_]+)"', app))
    return names


def deployed_settings() -> dict[str, Any]:
    return parsed(INFRA / "modules" / "functionapp.bicep")["resources"]["app__settings"]["config"]["properties"]


def test_the_bicep_sets_every_setting_the_code_reads_and_nothing_it_does_not():
    code = settings_code_reads()
    deployed = set(deployed_settings())
    assert {"SEGMENTS_CONTAINER", "EXPORT_SCHEDULE", "EXPORT_QUEUE", "KEY_VAULT_URL"} <= code  # the scan works
    # Storage is identity-based in Azure: the plain connection-string names and accountName stay unset.
    identity_forms = {n for n in code if n.endswith(("__blobServiceUri", "__queueServiceUri", "__clientId"))}
    needed = {n for n in code if "__" not in n and n not in ("EXPORT_STORAGE", "AzureWebJobsStorage")}
    missing = (needed - NOT_DEPLOYED) | identity_forms
    assert sorted(missing - deployed) == []
    assert sorted(deployed - code - HOST_SETTINGS) == []
    assert "SENDGRID_API_BASE_URL" not in deployed
    assert deployed_settings()["SECRETS_SOURCE"] == "keyvault"


def role_assignments() -> list[dict[str, Any]]:
    tree = parsed(INFRA / "modules" / "rbac.bicep")
    text = (INFRA / "modules" / "rbac.bicep").read_text()
    roles = dict(re.findall(r"^\s+(\w+): '([0-9a-f-]{36})'", text, flags=re.M))
    found = []
    for name, resource in tree["resources"].items():
        if resource["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        config = resource["config"]
        config = config.get("config", config)  # a conditional resource nests its body one level down
        role_key = config["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]["operator"][
            "operands"
        ]["operand_2"]
        found.append(
            {
                "name": name,
                "scope": config["scope"],
                "principal": config["properties"]["principalId"],
                "role": roles[role_key],
                "named_by_guid": config["name"]["function"]["type"] == "guid",
            }
        )
    return found


def test_each_data_plane_call_of_the_code_has_its_role_assignment():
    source = "\n".join(p.read_text() for p in (REPO / "shared").glob("**/*.py"))
    calls = {name for name in DATA_PLANE if re.search(rf"\.{name}\(", source)}
    assert {"download_blob", "upload_blob", "acquire_lease", "send_message", "get_secret"} <= calls  # the scan works
    granted = {(a["scope"], a["role"]) for a in role_assignments() if a["principal"] == "appPrincipalId"}
    scopes = {"blob": "storage", "queue": "storage", "vault": "vault"}
    for call in sorted(calls):
        service, allowed = DATA_PLANE[call]
        assert any((scopes[service], ROLE_IDS[role]) in granted for role in allowed), f"{call} has no role assignment"
    # App Insights with local auth off needs the identity to publish.
    assert ("appInsights", ROLE_IDS["Monitoring Metrics Publisher"]) in granted


def test_every_role_id_in_the_bicep_is_the_built_in_role_its_name_says():
    for path in BICEP_FILES:
        text = path.read_text()
        # Each role id is declared as `camelCaseRoleName: '<guid>'` (rbac.bicep's roles table).
        declared = re.findall(
            r"^\s+(\w+): '([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})'", text, re.M
        )
        for key, role_id in declared:
            name = re.sub(r"(?<!^)(?=[A-Z])", " ", key[0].upper() + key[1:])
            assert BUILTIN_ROLES.get(name) == role_id, f"{path.name}: {key} is {role_id}, Azure's {name!r} is not"
        # No role id may hide anywhere else, e.g. inline in a roleDefinitionId.
        every_guid = set(re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text))
        assert every_guid <= {role_id for _, role_id in declared}, f"{path.name}: an undeclared id"
    assert len(role_assignments()) >= 6  # the scan found the assignments


def test_role_assignments_are_named_by_guid_and_the_least_that_work():
    assignments = role_assignments()
    assert all(a["named_by_guid"] for a in assignments)
    app_roles = sorted(a["role"] for a in assignments if a["principal"] == "appPrincipalId")
    assert app_roles == sorted(
        ROLE_IDS[r]
        for r in (
            "Storage Blob Data Owner",
            "Storage Queue Data Contributor",
            "Key Vault Secrets User",
            "Monitoring Metrics Publisher",
        )
    )


def test_nothing_uses_a_key_where_an_identity_can_serve():
    text = "\n".join(p.read_text() for p in BICEP_FILES)
    for forbidden in ("listKeys(", "AccountKey=", "InstrumentationKey", "listSecrets(", "primaryKey"):
        assert forbidden not in text, forbidden
    storage = parsed(INFRA / "modules" / "storage.bicep")["resources"]["account"]["config"]["properties"]
    assert storage["allowSharedKeyAccess"] is False and storage["allowBlobPublicAccess"] is False
    assert storage["minimumTlsVersion"] == "TLS1_2" and storage["supportsHttpsTrafficOnly"] is True
    vault = parsed(INFRA / "modules" / "keyvault.bicep")["resources"]["vault"]["config"]["properties"]
    assert vault["enableRbacAuthorization"] is True and vault["enablePurgeProtection"] is True
    assert vault["enableSoftDelete"] is True
    monitoring = parsed(INFRA / "modules" / "monitoring.bicep")["resources"]
    assert monitoring["appInsights"]["config"]["properties"]["DisableLocalAuth"] is True
    assert monitoring["workspace"]["config"]["properties"]["features"]["disableLocalAuth"] is True
    app = parsed(INFRA / "modules" / "functionapp.bicep")["resources"]["app"]["config"]
    assert app["properties"]["httpsOnly"] is True
    # No ftpsState: a Flex Consumption site has no FTP, and ARM refuses the property there (flex_rules.py).
    assert "ftpsState" not in app["properties"]["siteConfig"]
    assert app["identity"]["type"] == "UserAssigned"
    assert app["properties"]["functionAppConfig"]["runtime"] == {"name": "python", "version": "3.11"}
    deployment = app["properties"]["functionAppConfig"]["deployment"]["storage"]["authentication"]
    assert deployment["type"] == "UserAssignedIdentity"


def test_storage_holds_the_containers_and_queue_the_settings_name():
    main = parsed(INFRA / "main.bicep")["parameters"]
    resources = parsed(INFRA / "modules" / "storage.bicep")["resources"]
    kinds = {r["type"] for r in resources.values()}
    assert "Microsoft.Storage/storageAccounts/queueServices/queues" in kinds
    assert main["segmentsContainerName"]["default"] == "segments"
    assert main["exportsContainerName"]["default"] == "sendgrid-exports"
    assert main["exportQueueName"]["default"] == "sendgrid-export-jobs"
    assert main["exportSchedule"]["default"] == "0 0 3 * * *"


def run_event_dimensions() -> tuple[str, set[str]]:
    """The event's name and the dimensions shared/run/telemetry.py gives it, read from the source."""
    telemetry = ast.parse((REPO / "shared" / "run" / "telemetry.py").read_text())
    counts = ast.parse((REPO / "shared" / "run" / "counts.py").read_text())
    event = ""
    dimensions: set[str] = set()
    # The counts are RunCounts' whole-number fields (COUNT_NAMES is made from them).
    count_names = tuple(
        field.target.id
        for node in ast.walk(counts)
        if isinstance(node, ast.ClassDef) and node.name == "RunCounts"
        for field in node.body
        if isinstance(field, ast.AnnAssign)
        and isinstance(field.target, ast.Name)
        and getattr(field.annotation, "id", "") == "int"
    )
    for node in ast.walk(telemetry):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "RUN_EVENT" for t in node.targets):
            event = ast.literal_eval(node.value)
        if isinstance(node, ast.FunctionDef) and node.name == "run_event":
            for inner in ast.walk(node):
                if isinstance(inner, ast.Dict):
                    dimensions.update(k.value for k in inner.keys if isinstance(k, ast.Constant))
                is_event = isinstance(inner, ast.Subscript) and getattr(inner.value, "id", "") == "event"
                if is_event and isinstance(inner.slice, ast.Constant):  # event["schedule_enabled"] = ...
                    dimensions.add(inner.slice.value)
    assert event and count_names and {"destination", "status", "trigger", "dry_run"} <= dimensions  # the scan works
    dimensions.update(f"count_{name}" for name in count_names)
    return event, dimensions


def bicep_queries(path: Path) -> list[str]:
    """Every `query:` of a Bicep file, its `${var}` references expanded from the file's string vars."""
    text = path.read_text()
    strings = dict(re.findall(r"^var (\w+) = '(.*)'$", text, flags=re.M))
    queries = re.findall(r"^\s+query: '(.*)'$", text, flags=re.M)
    for _ in range(5):  # vars refer to vars, a few levels deep
        queries = [re.sub(r"\$\{(\w+)\}", lambda m: strings.get(m[1], m[0]), q) for q in queries]
    return queries


def test_the_alerts_and_workbook_read_the_run_event_not_log_text():
    event, dimensions = run_event_dimensions()
    for module in ("monitoring.bicep", "workbook.bicep"):
        text = (INFRA / "modules" / module).read_text()
        assert "substring(message" not in text and "traces" not in text, module
        queries = bicep_queries(INFRA / "modules" / module)
        runs = [q for q in queries if "customDimensions" in q]
        assert runs and all(q.startswith(f'customEvents | where name == "{event}"') for q in runs), module
        used = set(re.findall(r"customDimensions\.(\w+)", "\n".join(queries)))
        assert sorted(used - dimensions) == [], f"{module} reads dimensions the event does not have"


def alert_rules() -> dict[str, dict[str, Any]]:
    resources = parsed(INFRA / "modules" / "monitoring.bicep")["resources"]
    return {
        name: r["config"]["properties"]
        for name, r in resources.items()
        if r["type"] == "Microsoft.Insights/scheduledQueryRules"
    }


def test_alerts_on_failed_runs_high_reject_rates_and_scheduled_destinations_gone_quiet():
    rules = alert_rules()
    assert set(rules) == {"failedRuns", "rejectRate", "staleRuns"}

    def accessor(resource: str) -> dict[str, Any]:
        return {"operator": {"type": "property_accessor", "operands": {"operand_1": resource, "operand_2": "id"}}}

    for properties in rules.values():
        assert properties["enabled"] is True and properties["scopes"] == [accessor("appInsights")]
        assert properties["actions"] == {"actionGroups": [accessor("actionGroup")]}
    failed, rejects, stale = bicep_queries(INFRA / "modules" / "monitoring.bicep")
    assert 'where status == "failed"' in failed
    # The reject rate: real runs only, against the parameter.
    assert 'tostring(customDimensions.dry_run) == "false"' in rejects
    assert "100.0 * rejected / rows_read > ${rejectRatePercent}" in rejects
    # No successful (or completed_with_errors) run of a scheduled destination in 26 hours.
    assert 'schedule_enabled == "true"' in stale and "ago(26h)" in stale and "join kind=leftanti" in stale
    assert 'status in ("succeeded", "completed_with_errors")' in stale
    assert 'tostring(customDimensions.dry_run) == "false"' in stale
    assert rules["staleRuns"]["windowSize"] == "P2D"  # the most a log alert may look back; 26 h fits in it
    assert rules["staleRuns"]["autoMitigate"] is False and rules["staleRuns"]["muteActionsDuration"] == "PT24H"


def test_the_reject_rate_is_a_described_bounded_parameter_azd_can_set():
    for path in (INFRA / "main.bicep", INFRA / "modules" / "monitoring.bicep"):
        param = parsed(path)["parameters"]["rejectRatePercent"]
        decorators = {d["type"]: d for d in param["decorators"]}
        assert param["type"] == "int" and param["default"] == 5
        assert {"description", "min_value", "max_value"} <= set(decorators)
        assert decorators["min_value"]["argument"] == 1 and decorators["max_value"]["argument"] == 100
    main = (INFRA / "main.bicep").read_text().split("module monitoring", 1)[1].split("\n}\n", 1)[0]
    assert "rejectRatePercent: rejectRatePercent" in main
    assert "rejectRateAlertName:" in main and "staleRunAlertName:" in main
    params = (INFRA / "main.parameters.json").read_text()
    assert '"rejectRatePercent": { "value": "${REJECT_RATE_PERCENT=5}" }' in params


def test_the_workbook_picks_destinations_leaves_out_dry_runs_and_shows_duration_errors_and_records():
    text = (INFRA / "modules" / "workbook.bicep").read_text()
    assert "name: 'Destination'" in text and "type: 2" in text and "multiSelect: true" in text
    assert "selectAllValue: '*'" in text and "timeContextFromParameter: 'TimeRange'" in text
    queries = [q for q in bicep_queries(INFRA / "modules" / "workbook.bicep") if "| where" in q]
    runs = [q for q in queries if "distinct destination" not in q]  # the picker's own query sees every run
    assert len(runs) >= 4
    for query in runs:
        assert 'tostring(customDimensions.dry_run) == "false"' in query
        assert '"*" in ({Destination}) or destination in ({Destination})' in query
    shown = "\n".join(runs)
    for dimension in ("duration_seconds", "error", "record_blob", "rejects_blob"):
        assert f"customDimensions.{dimension})" in shown, dimension


def test_telemetry_is_opentelemetry_end_to_end():
    """host.json's OpenTelemetry mode, the distro pinned, the worker told the app configures it, and
    no sampling that could drop the run event."""
    host = json.loads((REPO / "host.json").read_text())
    assert host["telemetryMode"] == "OpenTelemetry"
    sampling = host["logging"]["applicationInsights"]["samplingSettings"]
    assert "Event" in sampling["excludedTypes"].split(";")
    requirements = (REPO / "requirements.txt").read_text().split()
    assert any(re.fullmatch(r"azure-monitor-opentelemetry==[0-9.]+", line) for line in requirements)
    settings = deployed_settings()
    assert settings["PYTHON_ENABLE_OPENTELEMETRY"] == "true"
    # The worker would configure a second pipeline of its own, and every record would go twice.
    assert "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY" not in settings
    telemetry = (REPO / "shared" / "run" / "telemetry.py").read_text()
    assert '"enable_trace_based_sampling_for_logs": False' in telemetry


def test_azure_yaml_is_valid_for_azd():
    doc = yaml.safe_load((REPO / "azure.yaml").read_text())
    assert re.fullmatch(r"[a-z0-9-]+", doc["name"])
    (service,) = doc["services"].values()
    assert service["host"] == "function" and service["language"] == "python"
    assert (REPO / service["project"] / "function_app.py").exists()
    assert (REPO / service["project"] / "requirements.txt").exists()
    assert doc["infra"]["provider"] == "bicep" and (REPO / doc["infra"]["path"] / "main.bicep").exists()
    tag = re.search(r"'azd-service-name': '(\w+)'", (INFRA / "modules" / "functionapp.bicep").read_text())
    assert tag and tag[1] in doc["services"]
    params = (INFRA / "main.parameters.json").read_text()
    assert "${AZURE_ENV_NAME}" in params and "${AZURE_LOCATION}" in params


def test_blob_events_reach_the_function_after_deploy():
    """Exports that follow their data: a system topic on the storage account (Bicep), and the
    subscription made by azd's postdeploy hook once the function exists, filtered to BlobCreated
    in the segments container and aimed at the function the app registers."""
    topic = parsed(INFRA / "modules" / "eventgrid.bicep")["resources"]["topic"]
    assert topic["type"] == "Microsoft.EventGrid/systemTopics"
    assert topic["config"]["properties"]["topicType"] == "Microsoft.Storage.StorageAccounts"
    main = (INFRA / "main.bicep").read_text()
    assert "storageAccountName: storage.outputs.name" in main.split("module eventGrid", 1)[1].split("}\n}", 1)[0]
    outputs = parsed(INFRA / "main.bicep")["outputs"]
    needed = {"EVENT_GRID_SYSTEM_TOPIC_NAME", "SEGMENTS_CONTAINER", "FUNCTION_APP_URL", "AZURE_RESOURCE_GROUP"}
    assert needed <= set(outputs)
    hooks = yaml.safe_load((REPO / "azure.yaml").read_text())["hooks"]["postdeploy"]
    app = (REPO / "function_app.py").read_text()
    function = re.search(r"@app\.event_grid_trigger\([^)]*\)\ndef (\w+)", app)
    assert function, "function_app.py registers an Event Grid trigger"
    for platform in ("posix", "windows"):
        script = (REPO / hooks[platform]["run"]).read_text()
        assert f"functionName={function[1]}&" in script
        assert "--included-event-types Microsoft.Storage.BlobCreated" in script
        assert "/blobServices/default/containers/$" in script and "SEGMENTS_CONTAINER" in script
        assert "eventgrid_extension" in script and "--endpoint-type webhook" in script
        used = set(re.findall(r"\$(?:env:|\{|\()?(?:env:)?([A-Z][A-Z0-9_]{3,})", script))
        assert used - {"ErrorActionPreference", "LASTEXITCODE"} <= set(outputs), sorted(used - set(outputs))
    assert "scripts" in (REPO / ".funcignore").read_text().split()


def _parameter_mappings() -> dict[str, str]:
    doc = json.loads((INFRA / "main.parameters.json").read_text())
    return {name: spec["value"] for name, spec in doc["parameters"].items()}


_AZD_VALUE = re.compile(r"^\$\{([A-Z][A-Z0-9_]*)(?:=(.*))?\}$")


def test_every_parameter_of_main_bicep_is_mapped_with_its_default():
    text = (INFRA / "main.bicep").read_text()
    declared = dict(re.findall(r"^param (\w+) \w+(?: = (.+))?$", text, flags=re.M))
    mapped = _parameter_mappings()
    assert set(mapped) == set(declared)
    for name, value in mapped.items():
        match = _AZD_VALUE.match(value)
        assert match, f"{name}: {value!r} is not azd's ${{NAME}} or ${{NAME=default}}"
        default = declared[name].strip()
        if default and match[2] is not None:  # azd's default is the Bicep's, so unset means the same
            assert match[2] == default.strip("'"), name


def test_every_override_the_readme_names_is_mapped():
    readme = (REPO / "README.md").read_text()
    paragraph = readme.split("is mapped in `infra/main.parameters.json`", 1)[1].split("\n\n", 1)[0]
    claimed = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", paragraph))
    available = {_AZD_VALUE.match(v)[1] for v in _parameter_mappings().values()}  # type: ignore[index]
    assert claimed and claimed <= available, claimed - available
    # and every mapped override is named there (the azd-managed three aside)
    assert available - claimed <= {"AZURE_ENV_NAME", "AZURE_LOCATION", "AZURE_PRINCIPAL_ID"}
