"""HTTP Basic authentication of a CHIRP upgrade, checked before upgrading.

Bluejay sends ``Authorization: Basic base64(user:pass)`` on the WebSocket upgrade
with the agent's configured credentials (``bluejay-protocol.md`` §4.2). A
wire-compatible agent answers a mismatch with HTTP 401 and a
``WWW-Authenticate`` challenge *before* the upgrade, never by accepting and
closing. The comparison hashes both sides first and compares the digests with
:func:`hmac.compare_digest`, so its timing reveals neither the credentials nor
their length.

Example:
    >>> import base64
    >>> from roost.chirp import BasicAuth
    >>> auth = BasicAuth("bluejay", "s3cret")
    >>> auth.check("Basic " + base64.b64encode(b"bluejay:s3cret").decode())
    True
    >>> auth.check("Basic " + base64.b64encode(b"bluejay:guess").decode()), auth.check(None)
    (False, False)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

__all__ = ["BasicAuth"]


class BasicAuth:
    """Expected Basic-auth credentials of a CHIRP endpoint.

    Args:
        username: Expected user name (may contain any character but ``:``).
        password: Expected password.
        realm: Realm named in the ``WWW-Authenticate`` challenge.

    Raises:
        ValueError: if the user name contains ``:``, which Basic auth cannot carry.
    """

    __slots__ = ("_digest", "realm")

    def __init__(self, username: str, password: str, *, realm: str = "chirp") -> None:
        if ":" in username:
            raise ValueError("a Basic-auth user name cannot contain ':'")
        self.realm = realm
        self._digest = hashlib.sha256(f"{username}:{password}".encode()).digest()

    @property
    def challenge(self) -> str:
        """Value of the ``WWW-Authenticate`` header sent with a 401."""
        return f'Basic realm="{self.realm}", charset="UTF-8"'

    def check(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries the expected credentials."""
        if not authorization:
            return False
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            raw = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(hashlib.sha256(raw).digest(), self._digest)
