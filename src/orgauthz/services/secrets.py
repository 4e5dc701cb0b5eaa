"""Invitation tokens and API keys of service accounts and users (R5, R12, R14, R29).

Both are high-entropy values from :func:`secrets.token_urlsafe`, so one SHA-256 of the
value is all the store keeps: no salt or slow hash is needed against guessing, and the
hash doubles as the lookup key. A lookup fetches by hash and then compares the hashes
with :func:`hmac.compare_digest`, so nothing about a near miss leaks through timing.

API keys look like Prefect's: ``pnb_`` (a service account key, "b" for bot) or ``pnu_`` (a
user's personal key) followed by a random body of the same shape. Reads only ever show
:func:`mask` of a key. Nothing here logs; callers must never put a key or token in a log
line or an error message. Queued invitation email, which
must carry its token until the mail server takes it, is stored sealed (:func:`seal`, Fernet
with a key derived from ``settings.secret_key``), so a database dump shows no token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Final

from cryptography.fernet import Fernet, InvalidToken

API_KEY_PREFIX: Final = "pnb_"  # a service account's key
USER_KEY_PREFIX: Final = "pnu_"  # a user's personal key (R29)
KEY_PREFIXES: Final = (API_KEY_PREFIX, USER_KEY_PREFIX)
API_KEY_BODY_BYTES: Final = 30  # 40 URL-safe characters, 240 bits
TOKEN_BYTES: Final = 32  # 43 URL-safe characters, 256 bits
SECRET_MAX: Final = 256  # longer input is rejected before hashing

_BODY_RE: Final = re.compile(r"[A-Za-z0-9_-]{40}")
_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]{43}")


def new_token() -> str:
    """A one-time invitation token (shown once, stored as :func:`digest`)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_api_key(prefix: str = API_KEY_PREFIX) -> str:
    """An API key: ``prefix`` (``pnb_`` or ``pnu_``) + 40 URL-safe characters."""
    return prefix + secrets.token_urlsafe(API_KEY_BODY_BYTES)


def digest(secret: str) -> str:
    """The stored form of a token or key: hex SHA-256 (64 characters)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def same_digest(stored: str, secret: str) -> bool:
    """Constant-time comparison of a stored digest with the digest of ``secret``."""
    return same_hash(stored, digest(secret))


def same_hash(stored: str, computed: str) -> bool:
    """Constant-time comparison of two digests (``computed``: :func:`digest` of a presented secret)."""
    return hmac.compare_digest(stored.encode("ascii"), computed.encode("ascii"))


def parse_api_key(value: str, prefix: str = API_KEY_PREFIX) -> str | None:
    """The body of a well-formed key with ``prefix`` (a service account's, by default), or None.

    A key is well-formed when it is exactly the prefix followed by 40 URL-safe characters;
    anything else (another prefix, surrounding whitespace, a truncated key) can name no key
    and is refused without a lookup.
    """
    if len(value) > SECRET_MAX or not value.startswith(prefix):
        return None
    body = value[len(prefix) :]
    return body if _BODY_RE.fullmatch(body) else None


def key_prefix(value: str) -> str | None:
    """The prefix of a well-formed key of either kind (``pnb_`` or ``pnu_``), or None."""
    for prefix in KEY_PREFIXES:
        if parse_api_key(value, prefix) is not None:
            return prefix
    return None


def is_token(value: str) -> bool:
    """Whether ``value`` has the shape of an invitation token (43 URL-safe characters)."""
    return len(value) <= SECRET_MAX and _TOKEN_RE.fullmatch(value) is not None


def _fernet(secret_key: str) -> Fernet:
    if not secret_key:
        raise ValueError("secret_key is required to seal queued mail")
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode("utf-8")).digest()))


def seal(secret_key: str, text: str) -> str:
    """Encrypts ``text`` (a queued email holding a one-time link) for storage at rest."""
    return _fernet(secret_key).encrypt(text.encode("utf-8")).decode("ascii")


def unseal(secret_key: str, sealed: str) -> str:
    """The text :func:`seal` encrypted; ValueError when the key is not the one that sealed it."""
    try:
        return _fernet(secret_key).decrypt(sealed.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise ValueError("queued mail was sealed with another secret key") from None


def mask(api_key: str) -> str:
    """What reads show: ``pnb_ab…yz`` or ``pnu_ab…yz`` (prefix, first two and last two body
    characters)."""
    prefix = next((p for p in KEY_PREFIXES if api_key.startswith(p)), API_KEY_PREFIX)
    body = api_key.removeprefix(prefix)
    return f"{prefix}{body[:2]}…{body[-2:]}"
