"""The Windows postdeploy hook hands az.cmd the webhook URL whole, its & and key included.

No PowerShell here: the test reads scripts/subscribe-events.ps1, evaluates the arguments of its
`az eventgrid ... create` call (the few PowerShell forms the script uses: strings, `$var`,
`$env:NAME`, `$(...)`, `+`), builds the command line PowerShell gives a .cmd file (Windows
argument passing: an argument is quoted only when it holds whitespace, embedded quotes go as
they are), then reads that line as cmd.exe does: an unquoted & | < > ends the command there.
Azure CLI's doc/quoting-issues-with-powershell.md describes both steps.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "subscribe-events.ps1"
ENV = {
    "FUNCTION_APP_URL": "https://func-sendgrid-abc.azurewebsites.net",
    "AZURE_RESOURCE_GROUP": "rg-prod",
    "EVENT_GRID_SYSTEM_TOPIC_NAME": "egst-abc",
    "SEGMENTS_CONTAINER": "segments",
}
KEY = "Xy0_k3y-value=="  # a system key: letters, digits, - _ and trailing =


def logical_lines(text: str) -> list[str]:
    """The script's lines with PowerShell's backtick continuations joined."""
    return re.sub(r"`\r?\n\s*", " ", text).splitlines()


def tokens(command: str) -> list[str]:
    """PowerShell's split of a command's arguments: whitespace outside quotes."""
    return re.findall(r"\"(?:[^\"`]|`.)*\"|'[^']*'|[^\s]+", command)


class PowerShell:
    """Just enough of PowerShell's expression evaluation for the hook's argument strings."""

    def __init__(self, env: dict[str, str], variables: dict[str, str]) -> None:
        self.env = env
        self.variables = variables

    def variable(self, name: str) -> str:
        if name.lower().startswith("env:"):
            return self.env[name[4:]]
        return self.variables[name]

    def expand(self, inner: str) -> str:
        """A double-quoted string's content: $(...) and $name expanded, `x escapes applied."""
        inner = re.sub(r"\$\(([^()]*)\)", lambda m: self.evaluate(m[1]), inner)
        inner = re.sub(r"\$((?:env:)?\w+)", lambda m: self.variable(m[1]), inner)
        return re.sub(r"`(.)", r"\1", inner)

    def evaluate(self, expression: str) -> str:
        parts = [p.strip() for p in re.split(r"\s\+\s", expression.strip())]
        return "".join(self.term(p) for p in parts)

    def term(self, term: str) -> str:
        if term.startswith('"') and term.endswith('"'):
            return self.expand(term[1:-1])
        if term.startswith("'") and term.endswith("'"):
            return term[1:-1].replace("''", "'")
        if term.startswith("$"):
            return self.variable(term[1:])
        return term  # a bare word: itself


def hook_call(script: str) -> tuple[list[str], PowerShell]:
    """The evaluated arguments of the hook's `az eventgrid ... create`, the script's assignments
    (from the top, before it) evaluated in order."""
    shell = PowerShell(ENV, {"key": KEY})
    for line in logical_lines(script):
        assignment = re.match(r"^\$(\w+) = (.+)$", line.strip())
        if assignment and assignment[1] != "key":
            shell.variables[assignment[1]] = shell.evaluate(assignment[2])
        if line.strip().startswith("az eventgrid system-topic event-subscription create"):
            return [shell.term(t) for t in tokens(line.strip())[1:]], shell
    raise AssertionError("the hook makes no Event Grid subscription")


def windows_command_line(arguments: list[str]) -> str:
    """What PowerShell hands a .cmd file: each argument as is, in quotes only if it holds
    whitespace and is not quoted already."""
    quoted = []
    for argument in arguments:
        needs = argument == "" or (
            re.search(r"\s", argument) and not (argument.startswith('"') and argument.endswith('"'))
        )
        quoted.append(f'"{argument}"' if needs else argument)
    return "az.cmd " + " ".join(quoted)


def cmd_exe(line: str) -> list[str]:
    """cmd.exe's reading of the line: it must not end early at an unquoted & | < >; then the
    argv az's Python receives (quotes grouping and removed)."""
    quoted = False
    for position, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char in "&|<>" and not quoted:
            raise AssertionError(f"cmd.exe ends the command at {char!r}: {line[: position + 1]}...")
    return [part.replace('"', "") for part in re.findall(r'(?:"[^"]*"|[^\s"])+', line)][1:]


def test_the_webhook_url_reaches_az_whole_through_cmd_exe() -> None:
    arguments, _ = hook_call(SCRIPT.read_text())
    argv = cmd_exe(windows_command_line(arguments))
    endpoint = argv[argv.index("--endpoint") + 1]
    expected = f"{ENV['FUNCTION_APP_URL']}/runtime/webhooks/eventgrid?functionName=segment_landed&code={KEY}"
    assert endpoint == expected
    assert argv[argv.index("--subject-begins-with") + 1] == "/blobServices/default/containers/segments/"
    assert argv[argv.index("--endpoint-type") + 1] == "webhook"


def test_the_replay_catches_an_unquoted_ampersand() -> None:
    """The same replay on the script as it was (the URL passed bare) finds cmd.exe cutting it."""
    old = SCRIPT.read_text().replace("--endpoint $quotedEndpoint", "--endpoint $endpoint")
    arguments, _ = hook_call(old)
    with pytest.raises(AssertionError, match=r"cmd\.exe ends the command at '&'"):
        cmd_exe(windows_command_line(arguments))


def test_the_replay_reads_powershell_strings_as_powershell_does() -> None:
    shell = PowerShell({"X": "a b"}, {"v": "1"})
    assert shell.evaluate('"$($env:X)/$v"') == "a b/1"
    assert shell.evaluate("'\"' + $v + '\"'") == '"1"'
    assert windows_command_line(["a b", '"x&y"', "plain"]) == 'az.cmd "a b" "x&y" plain'
    assert cmd_exe('az.cmd --x "a&b" c') == ["--x", "a&b", "c"]


def test_the_windows_hook_runs_under_pwsh_and_stops_azd_on_failure() -> None:
    import yaml

    hook = yaml.safe_load((REPO / "azure.yaml").read_text())["hooks"]["postdeploy"]["windows"]
    assert hook["shell"] == "pwsh" and hook["continueOnError"] is False
    script = SCRIPT.read_text()
    assert "$ErrorActionPreference = 'Stop'" in script and "if ($LASTEXITCODE -ne 0) { throw" in script
