"""``make up`` / ``make down``: a local stack that keeps running between commands.

``up`` starts, each in a process of its own on 127.0.0.1 only:

- Azurite (always with ``--disableTelemetry``), its data in ``.azurite/`` so it survives a restart;
- the SendGrid simulator (``tools/standins/sendgrid/``);
- the Key Vault stand-in (HTTPS, a ``trustme`` CA written to the state folder) holding the
  simulator's API key as secret ``sendgrid-api-key``, and beside it a loopback token endpoint in
  the form App Service's managed identity uses, so the app's own ``DefaultAzureCredential`` and
  ``SecretClient`` read the key exactly as in Azure;

then creates the containers and the queue, uploads the sample segments and ``destinations.json``
(each only if absent: a second ``up`` never overwrites your edits, and says where a stored copy
differs from ``samples/``), and writes the settings into
``local.settings.json`` (read by ``func start`` and by ``python -m shared``) and
``.localstack/env`` (for a shell: ``set -a; . .localstack/env; set +a``).

Pids, ports and logs live in the state folder (``.localstack/``). A second ``up`` reuses a stack
that is whole and restarts one that is not; ``down`` stops only the processes it recorded (by
pid, after checking each is still the process it started) and is a no-op when nothing runs.

The ports are fixed (Azurite's own 10000-10002, the simulator 8787, the vault 8443 and its token
endpoint 8444), so ``func start`` and Storage Explorer keep working across restarts; a port held by
another process is an error that names it. ``--free-ports`` takes any free ones instead (tests, or
beside another stack). One Azurite per data folder: its pid is kept in the data folder.

Secrets reach the stand-ins through files (0600, in the 0700 state folder), never their command
lines: the simulator's API key and its control key (the ``X-Simulator-Key`` of its ``/__sim/``
endpoints), the vault's managed-identity header. The vault's access token is random per start.

The rooms: ``__main__`` (the command line), ``start`` (up), ``stack`` (down, status, is it whole),
``processes`` and ``ports`` (spawn, recognise, stop; which ports), ``state`` (the state folder),
``provision`` (containers, queue, samples), ``local_settings`` (what the app reads), ``uploads``
(your own data), ``vault`` (the Key Vault stand-in's process), ``paths``.
"""
