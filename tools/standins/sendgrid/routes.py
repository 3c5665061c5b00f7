"""SendGrid's API as the simulator serves it: method and path pattern -> the route's handler."""

from __future__ import annotations

import re
from collections.abc import Callable

from tools.standins.sendgrid import routes_bulk, routes_contacts, routes_lists
from tools.standins.sendgrid.api import Answer, ApiCall, ApiError, marketing

Route = tuple[str, re.Pattern[str], Callable[[ApiCall], Answer]]

# A path that matches none is a 404. Patterns are matched whole (``fullmatch``).
API_ROUTES: list[Route] = [
    # CSV import and contact export, with their pre-signed links (see routes_bulk).
    ("GET", marketing(r"contacts/exports/([^/]+)"), routes_bulk.export_status),
    ("POST", marketing("contacts/exports"), routes_bulk.start_export),
    ("PUT", marketing("contacts/imports"), routes_bulk.start_import),
    ("GET", re.compile(r"/v3/scopes"), routes_contacts.scopes),
    ("PUT", marketing("contacts"), routes_contacts.upsert),
    ("GET", marketing(r"contacts/imports/([^/]+)"), routes_contacts.import_status),
    ("GET", marketing("contacts/count"), routes_contacts.contact_count),
    ("POST", marketing("contacts/search/emails"), routes_contacts.search_emails),
    ("POST", marketing("contacts/search"), routes_contacts.search_sgql),
    ("GET", marketing("lists"), routes_lists.get_lists),
    ("POST", marketing("lists"), routes_lists.create_list),
    ("GET", marketing(r"lists/([^/]+)"), routes_lists.get_list),
    ("DELETE", marketing(r"lists/([^/]*)/contacts"), routes_lists.remove_from_list),
    ("GET", marketing("field_definitions"), routes_contacts.field_definitions),
]


def find_route(method: str, path: str) -> tuple[Callable[[ApiCall], Answer], tuple[str, ...]]:
    """The handler of this request and the variable parts of its path; a 404 if none."""
    for route_method, pattern, handle in API_ROUTES:
        match = pattern.fullmatch(path)
        if match is not None and method == route_method:
            return handle, match.groups()
    if path.strip("/").split("/")[:2] != ["v3", "marketing"]:
        raise ApiError(404, "not found")
    raise ApiError(404, f"{method} {path} is not simulated")
