"""lprp: a small WebAuthn relying party, the demo site of LocalPasskey.

It is what a real site does with passkeys, in three layers that do not know
about each other's insides:

- ``store``: users and their credentials, kept like a site keeps them (one
  JSON file, written atomically; public keys only).
- ``relying_party``: the two ceremonies (register, sign in), each a
  begin/finish pair. Every response is verified on the server by py_webauthn
  (an independent relying-party library); the result says what the site
  sees: UV, UP, BE, BS, AAGUID, attestation format and type, sign count.
- ``server``: the HTTP edge (standard library only) serving one page and a
  JSON API.

Run it with ``python -m lprp --port 8080`` from the ``rp/`` directory (or with
``PYTHONPATH=rp``). It is the seed of a relying-party kit: the ceremonies and
the store are usable without the HTTP server.
"""

__all__ = ["RelyingParty", "CeremonyError", "JsonStore"]

from .relying_party import CeremonyError, RelyingParty
from .store import JsonStore
