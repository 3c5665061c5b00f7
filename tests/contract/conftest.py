"""These tests run against the real local stand-ins: their fixtures come from tests/standins.py."""

from tests.standins import app_edges, blob_service, emulator, keyvault, simulator, workspace

__all__ = ["app_edges", "blob_service", "emulator", "keyvault", "simulator", "workspace"]
