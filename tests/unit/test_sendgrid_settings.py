"""The SendGrid tuning settings: defaults under production's limits, bounded overrides."""

from __future__ import annotations

import pytest

from shared.errors import SettingsError
from shared.settings import Settings

BASE = {"EXPORT_STORAGE": "UseDevelopmentStorage=true", "SECRETS_SOURCE": "environment"}


def test_defaults_stay_under_4_mib_and_inside_the_function_timeout():
    settings = Settings.from_env(BASE)
    assert settings.max_batch_bytes == 3_800_000 < 4 * 1024 * 1024
    assert settings.job_wait_seconds < settings.run_deadline_seconds < 2 * 3600  # host.json: 02:00:00


def test_overrides_are_read():
    settings = Settings.from_env(
        {
            **BASE,
            "SENDGRID_MAX_BATCH_BYTES": "6000000",
            "SENDGRID_JOB_WAIT_SECONDS": "60",
            "RUN_DEADLINE_SECONDS": "600",
        }
    )
    assert (settings.max_batch_bytes, settings.job_wait_seconds, settings.run_deadline_seconds) == (6_000_000, 60, 600)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SENDGRID_MAX_BATCH_BYTES", "6000001"),  # past the documented 6 MB
        ("SENDGRID_MAX_BATCH_BYTES", "99"),
        ("SENDGRID_JOB_WAIT_SECONDS", "0"),
        ("RUN_DEADLINE_SECONDS", "1e9"),
        ("RUN_DEADLINE_SECONDS", "²"),
    ],
)
def test_a_bad_value_names_the_setting(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({**BASE, name: value})
