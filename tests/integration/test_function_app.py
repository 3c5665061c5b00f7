"""The Functions app: its bindings, and its triggers called as the host would call them."""

from __future__ import annotations

import ast
import functools
import json
import pathlib
from typing import Any

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

import function_app
from shared import service
from tests.conftest import destination, make_edges


@functools.cache
def functions_by_name() -> dict[str, Any]:
    # get_functions() indexes the app and may run only once per process.
    return {f.get_function_name(): f for f in function_app.app.get_functions()}


def bindings_of(name: str) -> list[dict[str, Any]]:
    """The bindings as the host reads them (function.json)."""
    return json.loads(functions_by_name()[name].get_function_json())["bindings"]


def test_the_timer_binding():
    bindings = bindings_of("scheduled_export")
    assert len(bindings) == 1
    binding = bindings[0]
    assert binding["type"] == "timerTrigger" and binding["direction"] == "IN"
    assert binding["schedule"] == "%EXPORT_SCHEDULE%"
    assert binding["runOnStartup"] is False and binding["useMonitor"] is True
    assert binding["name"] == "timer"


def test_the_core_never_imports_the_functions_framework():
    for path in pathlib.Path(service.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.startswith("azure.functions") for n in names), path


@pytest.mark.integration
def test_the_timer_exports_every_scheduled_consenting_destination(workspace, simulator):
    workspace.put_segment("people.csv", "Email\na@example.com\nb@example.com\n")
    workspace.put_destinations(
        destination(),
        destination(name="paused", schedule_enabled=False, list={"name": "Paused", "create_if_missing": True}),
        destination(name="off", enabled=False, list={"name": "Off", "create_if_missing": True}),
        destination(
            name="no-consent", data_privacy_consent=False, list={"name": "NoConsent", "create_if_missing": True}
        ),
        destination(name="broken", region="mars"),
    )
    service.reset_app_edges(make_edges(workspace))
    try:
        user_function = functions_by_name()["scheduled_export"].get_user_function()
        user_function(TimerRequest(past_due=True))
    finally:
        service.reset_app_edges()
    assert [item["name"] for item in simulator.snapshot()["lists"]] == ["Newsletter"]
    assert simulator.members("Newsletter") == ["a@example.com", "b@example.com"]
    runs = workspace.export_names("runs/")
    assert len(runs) == 1 and runs[0].startswith("runs/newsletter/")


def test_function_app_is_thin():
    text = pathlib.Path(function_app.__file__).read_text()
    assert "requests" not in text and "BlobServiceClient" not in text
    assert isinstance(function_app.app, func.FunctionApp)
