"""Copy infra/ with the private network decided: `python render_variant.py on|off OUT_DIR`.

checkov reads a conditional (`privateNetwork ? 'Disabled' : 'Enabled'`) as neither value, so
`make iac` runs it on both renderings, where each such conditional is replaced by the value it
takes in that setting: checkov then judges what Azure would get, with VNET_ENABLED off and on.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

INFRA = Path(__file__).resolve().parents[1]
FLAGS = ("vnetEnabled", "privateNetwork")
_VALUE = r"('[^']*'|[\w.]+)"
_CONDITIONAL = re.compile(rf"\b(?:{'|'.join(FLAGS)}) \? {_VALUE} : {_VALUE}")
_DEFAULT = re.compile(rf"^(param (?:{'|'.join(FLAGS)}) bool) = \w+$", re.M)


def render(text: str, on: bool) -> str:
    text = _CONDITIONAL.sub(lambda m: m[1] if on else m[2], text)
    return _DEFAULT.sub(lambda m: f"{m[1]} = {'true' if on else 'false'}", text)


def render_tree(on: bool, out: Path) -> Path:
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(INFRA, out, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    for path in out.rglob("*.bicep"):
        path.write_text(render(path.read_text(), on))
    return out


if __name__ == "__main__":
    setting, target = sys.argv[1], Path(sys.argv[2])
    if setting not in ("on", "off"):
        raise SystemExit("usage: render_variant.py on|off OUT_DIR")
    print(render_tree(setting == "on", target))
