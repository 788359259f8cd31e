"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616/8760).

The platform authenticates to an agent's SIP endpoint with the agent's
``sip_username``/``sip_password`` (bluejay-protocol.md §3): the agent answers
the INVITE with 401 (``WWW-Authenticate``) or a proxy with 407
(``Proxy-Authenticate``), and the caller retries once with ``Authorization``
or ``Proxy-Authorization``. The client side here is :class:`DigestClient`
(it keeps the nonce count per nonce and makes a fresh cnonce per request);
the server side, :class:`DigestServer`, issues stateless HMAC-signed nonces
with an expiry (explicit time, no clock reads) and verifies answers in
constant time. It serves the agent endpoint's optional challenge and tests.

Supported: ``MD5`` (the SIP default), ``MD5-sess``, ``SHA-256`` and
``SHA-256-sess``; ``qop=auth``, ``qop=auth-int`` and the legacy no-qop form.

Example:
    >>> server = DigestServer("sim.test", secret=b"k")
    >>> challenge = Challenge.parse(server.challenge(now=100.0))
    >>> client = DigestClient(Credentials("agent", "secret"), cnonce_factory=lambda: "c1")
    >>> header = client.authorize(challenge, "INVITE", "sip:agent@127.0.0.1")
    >>> server.verify(header, "INVITE", {"agent": "secret"}.get, now=101.0).ok
    True
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from roost.sip.errors import DigestError
from roost.sip.headers import quote, unquote

__all__ = [
    "Challenge",
    "Credentials",
    "DigestClient",
    "DigestServer",
    "Verdict",
    "digest_response",
    "parse_auth_params",
]

_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
}
_ALGORITHMS = ("MD5", "MD5-SESS", "SHA-256", "SHA-256-SESS")
_PARAM_RE = re.compile(
    r'[ \t]*([A-Za-z0-9_\-]+)[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"|[^\s,"]*)[ \t]*(?:,|$)'
)


def parse_auth_params(text: str) -> dict[str, str]:
    """Parse ``name=value, name="quoted"`` auth parameters; keys lower-cased.

    Raises:
        DigestError: on malformed or duplicated parameters.

    Example:
        >>> parse_auth_params('realm="a, b", nonce=x, qop="auth,auth-int"')
        {'realm': 'a, b', 'nonce': 'x', 'qop': 'auth,auth-int'}
    """
    params: dict[str, str] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _PARAM_RE.match(text, pos)
        if match is None or match.end() == pos:
            raise DigestError(f"malformed auth parameter near {text[pos : pos + 30]!r}")
        key = match.group(1).lower()
        if key in params:
            raise DigestError(f"auth parameter {key} given twice")
        params[key] = unquote(match.group(2))
        pos = match.end()
    return params


def _split_scheme(value: str) -> tuple[str, str]:
    scheme, _, rest = value.strip().partition(" ")
    return scheme, rest


def _hash_for(algorithm: str) -> Callable[[bytes], str]:
    name = algorithm.upper()
    if name not in _ALGORITHMS:
        raise DigestError(f"unsupported digest algorithm {algorithm!r}")
    return _HASHES[name.removesuffix("-SESS")]


def digest_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value of RFC 2617 §3.2.2.1 (RFC 7616 for SHA-256).

    Raises:
        DigestError: for an unknown algorithm or qop, or qop without nc/cnonce.
    """
    h = _hash_for(algorithm)
    ha1 = h(f"{username}:{realm}:{password}".encode())
    if algorithm.upper().endswith("-SESS"):
        if cnonce is None:
            raise DigestError(f"{algorithm} needs a cnonce")
        ha1 = h(f"{ha1}:{nonce}:{cnonce}".encode())
    if qop == "auth-int":
        ha2 = h(f"{method}:{uri}:{h(body)}".encode())
    elif qop in (None, "auth"):
        ha2 = h(f"{method}:{uri}".encode())
    else:
        raise DigestError(f"unsupported qop {qop!r}")
    if qop is None:
        return h(f"{ha1}:{nonce}:{ha2}".encode())
    if nc is None or cnonce is None:
        raise DigestError("qop requires nc and cnonce")
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())


@dataclass(frozen=True, slots=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` / ``Proxy-Authenticate`` Digest challenge.

    Attributes:
        realm: Protection realm.
        nonce: Server nonce.
        algorithm: ``MD5`` (default), ``MD5-sess``, ``SHA-256``...
        qop: Offered qop values (empty for the legacy form).
        opaque: Opaque value to echo, if any.
        stale: True when the previous nonce merely expired (retry allowed).
    """

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False

    @classmethod
    def parse(cls, value: str) -> Challenge:
        """Parse one challenge header value.

        Raises:
            DigestError: for another scheme, missing realm/nonce or bad syntax.
        """
        scheme, rest = _split_scheme(value)
        if scheme.lower() != "digest":
            raise DigestError(f"unsupported authentication scheme {scheme[:20]!r}")
        params = parse_auth_params(rest)
        if "realm" not in params or "nonce" not in params:
            raise DigestError("digest challenge without realm or nonce")
        qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
        return cls(
            realm=params["realm"],
            nonce=params["nonce"],
            algorithm=params.get("algorithm", "MD5"),
            qop=qop,
            opaque=params.get("opaque"),
            stale=params.get("stale", "").lower() == "true",
        )

    @property
    def supported(self) -> bool:
        """True when this client can answer the challenge."""
        qop_ok = not self.qop or "auth" in self.qop or "auth-int" in self.qop
        return self.algorithm.upper() in _ALGORITHMS and qop_ok


@dataclass(frozen=True, slots=True)
class Credentials:
    """Digest credentials.

    Attributes:
        username: User name.
        password: Password.
        realm: Answer only challenges for this realm; ``None`` answers any.
    """

    username: str
    password: str = field(repr=False)
    realm: str | None = None


class DigestClient:
    """Answers digest challenges, keeping the nonce count per nonce.

    Args:
        credentials: Whom to authenticate as.
        cnonce_factory: Makes client nonces (random by default; tests fix it).
    """

    def __init__(
        self, credentials: Credentials, *, cnonce_factory: Callable[[], str] | None = None
    ) -> None:
        self.credentials = credentials
        self._cnonce = cnonce_factory or (lambda: secrets.token_hex(8))
        self._counts: dict[str, int] = {}

    def can_answer(self, challenge: Challenge) -> bool:
        """True when the challenge is supported and its realm matches the credentials."""
        realm = self.credentials.realm
        return challenge.supported and (realm is None or realm == challenge.realm)

    def authorize(self, challenge: Challenge, method: str, uri: str, body: bytes = b"") -> str:
        """The ``Authorization`` (or ``Proxy-Authorization``) value for one request.

        Raises:
            DigestError: when the challenge cannot be answered.
        """
        if not self.can_answer(challenge):
            raise DigestError(
                f"cannot answer a {challenge.algorithm} challenge for realm {challenge.realm!r}"
            )
        qop: str | None = None
        if challenge.qop:
            qop = "auth" if "auth" in challenge.qop else "auth-int"
        count = self._counts.get(challenge.nonce, 0) + 1
        if len(self._counts) > 64:
            self._counts.clear()
        self._counts[challenge.nonce] = count
        nc = f"{count:08x}"
        cnonce = self._cnonce()
        response = digest_response(
            algorithm=challenge.algorithm,
            username=self.credentials.username,
            realm=challenge.realm,
            password=self.credentials.password,
            nonce=challenge.nonce,
            method=method,
            uri=uri,
            qop=qop,
            nc=nc if qop else None,
            cnonce=cnonce if qop or challenge.algorithm.upper().endswith("-SESS") else None,
            body=body,
        )
        parts = [
            f"username={quote(self.credentials.username)}",
            f"realm={quote(challenge.realm)}",
            f"nonce={quote(challenge.nonce)}",
            f"uri={quote(uri)}",
            f"response={quote(response)}",
            f"algorithm={challenge.algorithm}",
        ]
        if qop or challenge.algorithm.upper().endswith("-SESS"):
            parts.append(f"cnonce={quote(cnonce)}")
        if qop:
            parts.extend((f"qop={qop}", f"nc={nc}"))
        if challenge.opaque is not None:
            parts.append(f"opaque={quote(challenge.opaque)}")
        return "Digest " + ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of :meth:`DigestServer.verify`.

    Attributes:
        ok: True when the credentials are valid.
        username: The user name the client claimed, if it could be read.
        stale: True when the answer was right but the nonce expired: challenge
            again with ``stale=true`` instead of rejecting.
        reason: Why it failed, for logs.
    """

    ok: bool
    username: str | None = None
    stale: bool = False
    reason: str = ""


_NONCE_MAC_BYTES = 16


class DigestServer:
    """Issues and verifies digest challenges without per-challenge state.

    Nonces are ``base64(issued_at || HMAC(secret, issued_at))``: any nonce this
    server issued verifies, none can be forged, and expiry is checked against
    the ``now`` passed in. Replayed nonce counts are refused (a bounded memory
    of the highest count seen per nonce and cnonce).

    Args:
        realm: The realm to announce.
        secret: HMAC key for nonces (random per process by default).
        nonce_ttl: Seconds a nonce stays valid.
        algorithm: ``MD5`` (the SIP default) or ``SHA-256``.
        qop: ``auth``, or ``None`` for the legacy RFC 2069 form.
    """

    def __init__(
        self,
        realm: str,
        *,
        secret: bytes | None = None,
        nonce_ttl: float = 300.0,
        algorithm: str = "MD5",
        qop: str | None = "auth",
    ) -> None:
        _hash_for(algorithm)
        self.realm = realm
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._ttl = nonce_ttl
        self._algorithm = algorithm
        self._qop = qop
        self._seen: OrderedDict[tuple[str, str], int] = OrderedDict()

    def challenge(self, now: float, *, stale: bool = False) -> str:
        """A ``WWW-Authenticate`` value carrying a fresh nonce issued at ``now``."""
        stamp = f"{now:.3f}".encode()
        mac = hmac.new(self._secret, stamp, hashlib.sha256).digest()[:_NONCE_MAC_BYTES]
        nonce = base64.urlsafe_b64encode(stamp + b":" + mac).decode().rstrip("=")
        parts = [f"realm={quote(self.realm)}", f"nonce={quote(nonce)}"]
        parts.append(f"algorithm={self._algorithm}")
        if self._qop:
            parts.append(f'qop="{self._qop}"')
        if stale:
            parts.append("stale=true")
        return "Digest " + ", ".join(parts)

    def _nonce_issued_at(self, nonce: str) -> float | None:
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except ValueError:
            return None
        # The stamp is ASCII digits and a dot; the MAC is raw bytes and may hold
        # a colon itself (one nonce in sixteen), so split at the first colon.
        stamp, sep, mac = raw.partition(b":")
        if not sep or len(mac) != _NONCE_MAC_BYTES:
            return None
        expected = hmac.new(self._secret, stamp, hashlib.sha256).digest()[:_NONCE_MAC_BYTES]
        if not hmac.compare_digest(mac, expected):
            return None
        try:
            return float(stamp.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return None

    def verify(
        self,
        authorization: str,
        method: str,
        password_for: Callable[[str], str | None],
        now: float,
        body: bytes = b"",
    ) -> Verdict:
        """Check an ``Authorization`` header value.

        Args:
            authorization: The header value.
            method: The request method.
            password_for: Returns the password of a user name, or ``None``.
            now: Current time (same clock as :meth:`challenge`).
            body: The request body (for ``qop=auth-int``).
        """
        scheme, rest = _split_scheme(authorization)
        if scheme.lower() != "digest":
            return Verdict(False, reason=f"unsupported scheme {scheme[:20]!r}")
        try:
            params = parse_auth_params(rest)
        except DigestError as exc:
            return Verdict(False, reason=str(exc))
        username = params.get("username")
        missing = [k for k in ("username", "realm", "nonce", "uri", "response") if k not in params]
        if missing or username is None:
            return Verdict(False, username, reason=f"missing {', '.join(missing)}")
        if params["realm"] != self.realm:
            return Verdict(False, username, reason="wrong realm")
        issued = self._nonce_issued_at(params["nonce"])
        if issued is None:
            return Verdict(False, username, reason="nonce not issued by this server")
        algorithm = params.get("algorithm", "MD5")
        if algorithm.upper() != self._algorithm.upper():
            return Verdict(False, username, reason=f"algorithm {algorithm} was not offered")
        qop = params.get("qop")
        if qop != self._qop:
            return Verdict(False, username, reason=f"qop {qop!r} was not offered")
        nc = params.get("nc")
        cnonce = params.get("cnonce")
        if qop is not None and (nc is None or cnonce is None or not _is_hex8(nc)):
            return Verdict(False, username, reason="qop answer without valid nc/cnonce")
        password = password_for(username)
        if password is None:
            return Verdict(False, username, reason="unknown user")
        try:
            expected = digest_response(
                algorithm=algorithm,
                username=username,
                realm=self.realm,
                password=password,
                nonce=params["nonce"],
                method=method,
                uri=params["uri"],
                qop=qop,
                nc=nc,
                cnonce=cnonce,
                body=body,
            )
        except DigestError as exc:
            return Verdict(False, username, reason=str(exc))
        if not hmac.compare_digest(expected.encode(), params["response"].lower().encode()):
            return Verdict(False, username, reason="wrong response")
        if now - issued > self._ttl:
            return Verdict(False, username, stale=True, reason="nonce expired")
        if nc is not None and cnonce is not None:
            key = (params["nonce"], cnonce)
            count = int(nc, 16)
            if count <= self._seen.get(key, 0):
                return Verdict(False, username, reason="replayed nonce count")
            self._seen[key] = count
            self._seen.move_to_end(key)
            while len(self._seen) > 4096:
                self._seen.popitem(last=False)
        return Verdict(True, username)


def _is_hex8(value: str) -> bool:
    return len(value) == 8 and all(c in "0123456789abcdefABCDEF" for c in value)
