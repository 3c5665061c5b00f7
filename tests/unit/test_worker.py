"""The run's life below the entry points: one reading of destinations.json a timer tick, and one
module (the ledger) that changes a record's status, saves it, or emits its run event."""

from __future__ import annotations

import json
import pathlib
import re

from shared.entrypoints.service import on_schedule
from shared.run.records import RunStatus
from tests.unit.test_export_core import setup

SHARED = pathlib.Path(__file__).parents[2] / "shared"


def test_a_timer_tick_reads_destinations_json_once_for_all_its_destinations():
    runtime, _ = setup()
    names = ["newsletter", "offers", "weekly"]
    exports = runtime.edges.exports
    exports.blobs["destinations.json"] = json.dumps(
        {
            "destinations": [
                {
                    "name": name,
                    "data_privacy_consent": True,
                    "schedule_enabled": True,
                    "list": {"id": f"list-{name}"},
                    "segments": [{"path": "people.csv"}],
                }
                for name in names
            ]
        }
    ).encode()
    reads: list[str] = []
    read_bytes = exports.read_bytes

    def counting(name: str, **bounds: object) -> bytes:
        reads.append(name)
        return read_bytes(name, **bounds)

    exports.read_bytes = counting
    queued = on_schedule(runtime)
    assert sorted(r.destination for r in queued) == names
    assert all(r.status == RunStatus.QUEUED for r in queued)
    assert reads.count("destinations.json") == 1


# What only the ledger may do to a run record: set its status, save it, emit its event.
_WRITES = re.compile(r"\brecords\.save\(|\bstore\.save\(|\bemit_run_event\(|\.status = RunStatus\.")


def test_only_the_ledger_changes_saves_or_announces_a_run_record():
    writers = {
        path.relative_to(SHARED).as_posix()
        for path in SHARED.rglob("*.py")
        if _WRITES.search(path.read_text(encoding="utf-8"))
    }
    # telemetry defines emit_run_event; records defines the store whose save the ledger calls.
    assert writers <= {"run/ledger.py", "run/telemetry.py"}, writers
    assert "run/ledger.py" in writers
