"""These tests run against the real local stand-ins: their fixtures come from tests/standins.py."""

from tests.standins import app_runtime, blob_service, emulator, keyvault, simulator, workspace

__all__ = ["app_runtime", "blob_service", "emulator", "keyvault", "simulator", "workspace"]
