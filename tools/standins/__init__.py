"""The local stand-ins of the services the app talks to, real servers on 127.0.0.1 for tests,
the demo, the bench and ``make up``:

- :mod:`tools.standins.sendgrid`: the SendGrid Marketing API simulator (our sourced knowledge of
  SendGrid's limits and behaviour);
- :mod:`tools.standins.keyvault`: a Key Vault that the real ``SecretClient`` reads over HTTPS;
- :mod:`tools.standins.storage`: Azurite (blob and queue), started and stopped.

Each is imported by its own name: the Key Vault stand-in needs ``trustme`` and the storage one
``node_modules``, which a user of the others need not have.
"""

__all__ = ["keyvault", "sendgrid", "storage"]
