"""Where the local stack keeps its things, and a path as the user would type it."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
DEFAULT_STATE = REPO / ".localstack"
DEFAULT_DATA = REPO / ".azurite"
DEFAULT_SETTINGS = REPO / "local.settings.json"
SAMPLES = REPO / "samples"
SAMPLE_SEGMENT = "demo/newsletter.csv"  # the blob the sample destination 'newsletter' reads first


def shown(path: Path) -> str:
    """A path as typed from the current directory (make runs in the repo): relative where it can be."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)
