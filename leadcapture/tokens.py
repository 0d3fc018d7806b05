"""Signed links: one salt and one age limit per purpose."""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from flask import current_app
from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from leadcapture import clock
from leadcapture.errors import TokenExpired, TokenInvalid


class Purpose(enum.Enum):
    """Each purpose signs with its own salt, so a token for one never opens another."""

    CONFIRM = ("confirm", timedelta(days=14))
    DOWNLOAD = ("download", timedelta(days=30))
    # Unsubscribe and preference links live in inboxes for years and must keep working.
    UNSUBSCRIBE = ("unsubscribe", None)
    PREFERENCES = ("preferences", None)
    ANSWER = ("answer", timedelta(days=365))
    # Issued with a widget definition and echoed by its submission.
    FORM = ("form", timedelta(days=1))
    # Added to article links in marketing email, so the widget there knows whom it is talking to.
    READER = ("reader", timedelta(days=365))
    # Opens answers someone gave under a confirmed address to its owner, who alone may apply them; after a
    # month the owner has moved on and they are no longer news.
    CHANGE = ("change", timedelta(days=30))
    # A tracked link in marketing email (/l/<token>): it lives as long as the email does, and names only the
    # delivery and the link's place in it; where it leads is read from what was sent.
    CLICK = ("click", None)
    # Keys the hash an erased address leaves on the suppression list (a fingerprint, never a token).
    ERASURE = ("erasure", None)

    def __init__(self, salt: str, max_age: timedelta | None) -> None:
        self.salt = salt
        self.max_age = max_age


class _ClockSigner(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(clock.now().timestamp())


class TokenService:
    """Signs and reads tokens with a rotating list of keys, newest first."""

    def __init__(self, secret_keys: Sequence[str]) -> None:
        # itsdangerous signs with the last key and accepts all of them.
        self._keys = list(reversed(secret_keys))
        # One serializer per purpose, made once: making one costs about as much as signing a token with it.
        self._serializers: dict[str, URLSafeTimedSerializer] = {}

    def _serializer(self, purpose: Purpose) -> URLSafeTimedSerializer:
        serializer = self._serializers.get(purpose.salt)
        if serializer is None:
            serializer = self._serializers[purpose.salt] = URLSafeTimedSerializer(
                self._keys, salt="leadcapture." + purpose.salt, signer=_ClockSigner
            )
        return serializer

    def make(self, purpose: Purpose, payload: Mapping[str, Any]) -> str:
        return str(self._serializer(purpose).dumps(dict(payload)))

    def fingerprint(self, purpose: Purpose, value: str) -> str:
        """A keyed hash of `value` under the newest key: stable, unguessable, and revealing nothing of it."""
        key = hashlib.sha256(("leadcapture." + purpose.salt + "\0" + self._keys[-1]).encode()).digest()
        digest = hmac.new(key, value.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def read(self, purpose: Purpose, token: str) -> dict[str, Any]:
        """The payload of a genuine token; TokenExpired (carrying the payload) or TokenInvalid otherwise."""
        serializer = self._serializer(purpose)
        max_age = int(purpose.max_age.total_seconds()) if purpose.max_age else None
        if len(token) > 1024:
            raise TokenInvalid("token too long")
        try:
            payload = serializer.loads(token, max_age=max_age)
        except SignatureExpired as exc:
            try:
                expired = serializer.load_payload(exc.payload) if exc.payload is not None else None
            except BadData as inner:
                raise TokenInvalid(str(inner)) from inner
            if not isinstance(expired, dict):
                raise TokenInvalid("unexpected token payload") from exc
            raise TokenExpired(expired) from exc
        except BadData as exc:
            raise TokenInvalid(str(exc)) from exc
        if not isinstance(payload, dict):
            raise TokenInvalid("unexpected token payload")
        return payload


def tokens() -> TokenService:
    """The token service of the current app."""
    service: TokenService = current_app.extensions["leadcapture.tokens"]
    return service


def make_token(purpose: Purpose, payload: Mapping[str, Any]) -> str:
    return tokens().make(purpose, payload)


def fingerprint(purpose: Purpose, value: str) -> str:
    return tokens().fingerprint(purpose, value)


def read_token(purpose: Purpose, token: str) -> dict[str, Any]:
    return tokens().read(purpose, token)
