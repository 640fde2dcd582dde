"""Who is calling: JSON Web Tokens on the signaling sockets and on every API, and the service
API key.

Tokens are HS256 with a secret from the environment, or RS256 checked with a public key. The
algorithm is pinned (no `none`, no switching HS256/RS256 on the token's say), and `exp`, `iat`,
`aud` and `sub` are required. Browsers put the token in `hello.token` (a WebSocket cannot carry
headers, and query strings end up in logs); HTTP APIs take `Authorization: Bearer`.

Roles (the `role` claim):
- `user` (or none): a person; may open sessions of their own (`sub` is the user id);
- `listener`: a person joining the one session `sid` that an app made for them;
- `agent`: a backend acting on the one session `sid` (speak, cancel, events);
- `service`: an app's backend; may make sessions for its users and act on those it made. The
  service API key (VOICE_RTC_SERVICE_API_KEY, as a Bearer token) is a service credential too.

Dev mode: with no key configured and the server on loopback only, the server makes up a secret
(once: it keeps it in its state directory, so a restart does not sign everyone out, and every
worker process shares it) and hands short-lived tokens to the demo page (GET /api/dev-token), so
the demo and the tests work with no setup; beyond loopback, the settings refuse to start without
a key.
"""

import hmac
import os
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import jwt

from .config import Settings

DEV_TOKEN_TTL_S = 900
API_KEY_SERVICE = "api-key"  # the service an API-key caller acts as
LEEWAY_S = 5  # clock skew tolerated between the token's issuer and us


class AuthError(Exception):
    """The token is missing or not acceptable; the message says why (for a developer)."""


DEFAULT_STATE_DIR = "~/.local/state/voice-rtc"
DEV_SECRET_FILE = "dev-jwt-secret"


def dev_secret(state_dir: Path) -> str:
    """The dev-mode signing secret in `state_dir`, made (readable by this user only) if there is
    none yet. Processes starting at once (workers) agree on one: each writes a whole secret to a
    file of its own and links it into place, which only one link can do; everyone then reads
    back whatever won. The secret is never seen half-written."""
    path = state_dir / DEV_SECRET_FILE
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        temp = state_dir / f".{DEV_SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # another process was first: use its secret
        finally:
            temp.unlink()
    if secret := path.read_text().strip():
        return secret
    raise AuthError(f"{path} is empty: remove it, and a new secret is made")


class Role(StrEnum):
    USER = "user"
    LISTENER = "listener"
    AGENT = "agent"
    SERVICE = "service"


@dataclass(frozen=True)
class Identity:
    user_id: str  # the person, for users and listeners; the service's name, for a service
    role: Role = Role.USER
    session_id: str | None = None  # the one session a listener or agent token is for
    service: str | None = None  # the service an agent acts for, or that is calling

    def may_act_on(self, session_id: str, created_by: str | None) -> bool:
        """May this agent or service speak into, cancel and watch that session?"""
        if self.role is Role.AGENT:
            return self.session_id == session_id
        return self.role is Role.SERVICE and created_by is not None and created_by == self.service


class Authenticator:
    def __init__(
        self,
        key: str,
        algorithm: str,
        audience: str,
        issuer: str = "",
        dev_mode: bool = False,
        service_api_key: str = "",
    ) -> None:
        self._key = key
        self._algorithm = algorithm
        self._audience = audience
        self._issuer = issuer
        self.dev_mode = dev_mode
        self._service_api_key = service_api_key

    @classmethod
    def from_settings(cls, settings: Settings) -> "Authenticator":
        api_key = settings.service_api_key
        if settings.jwt_public_key_file:
            key = Path(settings.jwt_public_key_file).read_text()
            return cls(key, "RS256", settings.jwt_audience, settings.jwt_issuer, False, api_key)
        if settings.jwt_secret:
            secret = settings.jwt_secret
            return cls(secret, "HS256", settings.jwt_audience, settings.jwt_issuer, False, api_key)
        # Settings validation allows no key only on loopback: dev mode.
        secret = dev_secret(Path(settings.state_dir or DEFAULT_STATE_DIR).expanduser())
        return cls(secret, "HS256", settings.jwt_audience, dev_mode=True, service_api_key=api_key)

    @property
    def mints(self) -> bool:
        """Can this server sign tokens (HS256)? With RS256 it only checks them: the app's
        backend, which holds the private key, signs listener and agent tokens itself."""
        return self._algorithm == "HS256"

    def verify(self, token: str | None) -> Identity:
        if not token:
            raise AuthError("no token")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer or None,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"{type(exc).__name__}: {exc}") from None
        user_id = claims["sub"]
        if not isinstance(user_id, str) or not 0 < len(user_id) <= 128:
            raise AuthError("sub must be a user id of 1-128 characters")
        try:
            role = Role(claims.get("role", Role.USER))
        except ValueError:
            raise AuthError(f"role must be one of {', '.join(Role)}") from None
        session_id = claims.get("sid")
        if role in (Role.LISTENER, Role.AGENT) and not (
            isinstance(session_id, str) and 0 < len(session_id) <= 64
        ):
            raise AuthError(f"a {role} token names its session in sid")
        service: str | None = None
        if role is Role.SERVICE:
            service = user_id
        elif role is Role.AGENT:
            service = claims.get("svc") if isinstance(claims.get("svc"), str) else None
        return Identity(user_id, role, session_id if isinstance(session_id, str) else None, service)

    def verify_service(self, credential: str | None) -> Identity:
        """An app's backend: the service API key, or a token with the service role."""
        if (
            credential
            and self._service_api_key
            and hmac.compare_digest(credential.encode(), self._service_api_key.encode())
        ):
            return Identity(API_KEY_SERVICE, Role.SERVICE, service=API_KEY_SERVICE)
        identity = self.verify(credential)
        if identity.role is not Role.SERVICE:
            raise AuthError("this needs a service credential (the API key, or role service)")
        return identity

    def session_tokens(
        self, session_id: str, user_id: str, service: str, ttl_s: int
    ) -> tuple[str, str]:
        """A listener token (the user, for this session only) and an agent token (acting for
        `service` on this session only)."""
        listener = self._sign({"sub": user_id, "role": Role.LISTENER, "sid": session_id}, ttl_s)
        agent = self._sign(
            {"sub": f"agent:{service}", "role": Role.AGENT, "sid": session_id, "svc": service},
            ttl_s,
        )
        return listener, agent

    def mint(self, user_id: str, ttl_s: int = DEV_TOKEN_TTL_S, role: Role = Role.USER) -> str:
        """A token for `user_id` (dev mode hands these out; the real ones come from the app's
        backend)."""
        claims: dict[str, object] = {"sub": user_id}
        if role is not Role.USER:
            claims["role"] = role.value
        return self._sign(claims, ttl_s)

    def _sign(self, claims: dict[str, object], ttl_s: int) -> str:
        if not self.mints:
            raise AuthError("this server verifies tokens; it does not issue them")
        now = int(time.time())
        claims = {**claims, "aud": self._audience, "iat": now, "exp": now + ttl_s}
        if self._issuer:
            claims["iss"] = self._issuer
        return jwt.encode(claims, self._key, algorithm="HS256")


def bearer_token(authorization: str | None) -> str | None:
    if authorization and authorization.startswith("Bearer "):
        return authorization.removeprefix("Bearer ").strip()
    return None
