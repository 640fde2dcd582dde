"""Client tokens as an app's backend issues them, for servers that are not in dev mode (beyond
loopback, or with a key configured): start the server with `JWT_ENV`."""

import secrets
import time

import jwt

JWT_SECRET = secrets.token_urlsafe(32)  # this test run's, never a real one
JWT_ENV = {"VOICE_RTC_JWT_SECRET": JWT_SECRET}


def app_token(user: str = "listener") -> str:
    """HS256, with the claims voice_rtc/auth.py wants."""
    now = int(time.time())
    claims = {"sub": user, "aud": "voice-rtc", "iat": now, "exp": now + 600}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")
