"""What a destination name and a run id may look like: one pattern each, for every way in
(``destinations.json``, queue messages, the HTTP API, the CLI, Event Grid).

``\\Z`` and not ``$``: ``$`` would let a final newline through.
"""

import re

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")
RUN_ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}\Z")
