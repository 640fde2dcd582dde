"""Who is calling: JSON Web Tokens on the signaling socket and on every API that acts for a user.

Tokens are HS256 with a secret from the environment, or RS256 checked with a public key. The
algorithm is pinned (no `none`, no switching HS256/RS256 on the token's say), and `exp`, `iat`,
`aud` and `sub` (the user id) are required. Browsers put the token in `hello.token` (a WebSocket
cannot carry headers, and query strings end up in logs); HTTP APIs take `Authorization: Bearer`.

Dev mode: with no key configured and the server on loopback only, the server makes up a secret
(once: it keeps it in its state directory, so a restart does not sign everyone out, and every
worker process shares it) and hands short-lived tokens to the demo page (GET /api/dev-token), so
the demo and the tests work with no setup; beyond loopback, the settings refuse to start without
a key.
"""

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from .config import Settings

DEV_TOKEN_TTL_S = 900
LEEWAY_S = 5  # clock skew tolerated between the token's issuer and us


class AuthError(Exception):
    """The token is missing or not acceptable; the message says why (for a developer)."""


DEFAULT_STATE_DIR = "~/.local/state/voice-rtc"
DEV_SECRET_FILE = "dev-jwt-secret"


def dev_secret(state_dir: Path) -> str:
    """The dev-mode signing secret in `state_dir`, made (readable by this user only) if there is
    none yet. Two processes starting at once agree on one: the file is created exclusively."""
    path = state_dir / DEV_SECRET_FILE
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another process may be writing it this very moment
            if secret := path.read_text().strip():
                return secret
            time.sleep(0.01)
        raise AuthError(f"{path} is empty") from None
    secret = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as out:
        out.write(secret)
    return secret


@dataclass(frozen=True)
class Identity:
    user_id: str


class Authenticator:
    def __init__(
        self, key: str, algorithm: str, audience: str, issuer: str = "", dev_mode: bool = False
    ) -> None:
        self._key = key
        self._algorithm = algorithm
        self._audience = audience
        self._issuer = issuer
        self.dev_mode = dev_mode

    @classmethod
    def from_settings(cls, settings: Settings) -> "Authenticator":
        if settings.jwt_public_key_file:
            key = Path(settings.jwt_public_key_file).read_text()
            return cls(key, "RS256", settings.jwt_audience, settings.jwt_issuer)
        if settings.jwt_secret:
            return cls(settings.jwt_secret, "HS256", settings.jwt_audience, settings.jwt_issuer)
        # Settings validation allows no key only on loopback: dev mode.
        secret = dev_secret(Path(settings.state_dir or DEFAULT_STATE_DIR).expanduser())
        return cls(secret, "HS256", settings.jwt_audience, dev_mode=True)

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
        return Identity(user_id)

    def mint(self, user_id: str, ttl_s: int = DEV_TOKEN_TTL_S) -> str:
        """A token for `user_id`: dev mode only (the real ones come from the app's backend)."""
        if self._algorithm != "HS256":
            raise AuthError("this server verifies tokens; it does not issue them")
        now = int(time.time())
        claims = {"sub": user_id, "aud": self._audience, "iat": now, "exp": now + ttl_s}
        if self._issuer:
            claims["iss"] = self._issuer
        return jwt.encode(claims, self._key, algorithm="HS256")


def bearer_token(authorization: str | None) -> str | None:
    if authorization and authorization.startswith("Bearer "):
        return authorization.removeprefix("Bearer ").strip()
    return None
