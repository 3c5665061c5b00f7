"""A SendGrid Marketing Campaigns stand-in: a real HTTP server on loopback, for tests and demos.

Stateful (contacts, lists, custom fields, import and list-removal jobs that finish after a delay),
strict about the limits and request shapes of SendGrid's published OpenAPI documents (30,000
contacts a request, field lengths, identifiers, list and custom field ids), sending
``X-RateLimit-*`` headers and 429s, and able to inject faults on request: 5xx, 429 storms, slow
answers, dropped connections, contacts SendGrid refuses, import jobs that end ``errored`` or
``failed``.

Where SendGrid's documents and what production users report differ, the stricter one is the
default, and each such rule names its source here and beside the code that enforces it:

- Request bodies over 4 MiB are refused (413), although the contacts document says 6 MB:
  production callers hit 4 MiB (the public project Stand-With-Crypto/swc-web cuts its upsert
  batches at 3.9 MB for this reason). ``max_body_bytes`` and ``too_large_status`` (413, or 400
  with a "too large" message) are settings. (:mod:`.rules`, :mod:`.routes_contacts`)
- A 400 names no contact by position (``contacts[3].email``): that form is documented nowhere, so
  a client must not depend on it. ``indexed_errors`` turns it on. (:mod:`.rules`)
- Contacts can fail inside an accepted import job (``errored``, ``errored_count``,
  ``errors_url``); the errors file is a pre-signed download that refuses an ``Authorization``
  header, as a pre-signed object-store URL does. Its format is not documented: ``errors_format``
  picks CSV, JSON, or an unreadable file. (:mod:`.jobs`, :mod:`.control`)
- "In order to update a contact, all of its existing identifiers must be present" (contacts
  document, PUT /v3/marketing/contacts): a contact stored with an ``external_id``,
  ``phone_number_id`` or ``anonymous_id`` that an upsert leaves out fails inside the job.
  (:mod:`.jobs`)
- search/emails takes at most 100 addresses of at most 100 characters (the document's
  ``maxLength``), and answers 400 if any address is invalid (its description). (:mod:`.rules`)
- New contacts become searchable ``search_lag`` seconds after their job ends (users report
  minutes; 0 unless set, so tests that do not study it need not wait). (:mod:`.jobs`)
- Removing contacts from a list is a job (202 with ``job_id``), followed on the import status
  endpoint; a DELETE naming a contact id that does not exist answers 404 (lists document).
  (:mod:`.routes_lists`)
- Pace: every answer carries ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (the epoch
  second the window ends), per endpoint (method and route, ids folded), in fixed windows; a
  request past the limit is a 429 with the same headers (SendGrid's "Rate limits" page: limits
  are per endpoint and announced only in these headers; no number is published for the
  Marketing endpoints). ``pace`` sets a limit and window per endpoint; the production pace seen
  by a public sync (Stand-With-Crypto/swc-web, ``sendgridContactsCronJob/config.ts``) is about 6
  ``PUT /v3/marketing/contacts`` a minute, which ``PRODUCTION_PACE`` models. (:mod:`.pace`)
- Import jobs take ``job_delay`` seconds plus ``job_seconds_per_contact`` a contact: about 30 s
  even for one contact in production (NangoHQ/integration-templates,
  ``integrations/sendgrid/tests/upsert-contacts.test.json``: ``pending`` for 33 s).
- ``status_shape="production"`` answers the import status as production does: ``job_type``
  ``upsert_contacts`` (the document's example says ``upsert``), the counts present while the job
  is ``pending`` (a partial tally, not its outcome); ``"camel"`` also spells the results in
  camelCase (``requestedCount``), as some of SendGrid's answers do. (:mod:`.jobs`)
- ``contact_cap``: a job that would store more contacts than the plan holds ends ``failed`` with
  "you have hit your contact limit" (sendgrid/sendgrid-go issue 413: the job fails, the PUT was
  accepted); ``GET /v3/marketing/contacts/count`` gives the account's contact count.
- Scopes carry SendGrid's published names (``marketing.read``, ``marketing.automation.read``,
  the legacy ``marketing_campaigns.*``); a key without write access is refused writes (403).
- CSV import and contact export: :mod:`.bulk` lists their rules and sources.

The rooms: :mod:`.state` (the store), :mod:`.rules` (limits and validators), :mod:`.jobs`,
:mod:`.pace`, :mod:`.faults`, the routes (:mod:`.routes` is the table; :mod:`.routes_contacts`,
:mod:`.routes_lists`, :mod:`.routes_bulk`), :mod:`.handler` (the HTTP server and each request's
gate) and :mod:`.control` (the ``/__sim/`` endpoints, behind the simulator's own control key).

Run it alone with ``python -m tools.standins.sendgrid --port 0 --api-key-file FILE``; it prints
``PORT=<n>``. Keys are read from files (or the environment), never from the command line, where
``ps`` shows them. In-process: ``start(SimState([key]))`` returns the running server.
"""

from tools.standins.sendgrid.bulk import MAX_IMPORT_BYTES, MAX_IMPORT_ROWS
from tools.standins.sendgrid.control import CONTROL_KEY_HEADER
from tools.standins.sendgrid.faults import Fault
from tools.standins.sendgrid.handler import SimServer, start
from tools.standins.sendgrid.jobs import Job
from tools.standins.sendgrid.pace import PRODUCTION_PACE
from tools.standins.sendgrid.rules import (
    CONTACT_STRING_LIMITS,
    DOCUMENTED_MAX_BODY_BYTES,
    MAX_BODY_BYTES,
    MAX_CONTACTS,
    SEARCH_EMAIL_MAX_LENGTH,
    SEARCH_EMAILS_MAX,
)
from tools.standins.sendgrid.state import SimState

__all__ = [
    "CONTACT_STRING_LIMITS",
    "CONTROL_KEY_HEADER",
    "DOCUMENTED_MAX_BODY_BYTES",
    "MAX_BODY_BYTES",
    "MAX_CONTACTS",
    "MAX_IMPORT_BYTES",
    "MAX_IMPORT_ROWS",
    "PRODUCTION_PACE",
    "SEARCH_EMAILS_MAX",
    "SEARCH_EMAIL_MAX_LENGTH",
    "Fault",
    "Job",
    "SimServer",
    "SimState",
    "start",
]
