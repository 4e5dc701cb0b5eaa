"""Documented bounds on every input field (SPEC §4), checked before anything runs.

Each checker returns the value it accepted or raises :class:`InvalidArgument`
naming the field. docs/api.md lists the same bounds.
"""

from __future__ import annotations

import base64
import re
from typing import Final

from orgauthz.errors import InvalidArgument

ID_MAX: Final = 128
HANDLE_MAX: Final = 64
NAME_MAX: Final = 200
EMAIL_MAX: Final = 254
SCOPE_MAX: Final = 64
BATCH_MAX: Final = 1000
PAGE_SIZE_MAX: Final = 1000
PAGE_SIZE_DEFAULT: Final = 100
INVITE_BATCH_MAX: Final = 100
SCOPES_PER_ROLE_MAX: Final = 200
LIMIT_MAX: Final = 1_000_000
DESCRIPTION_MAX: Final = 1000
PAGE_TOKEN_MAX: Final = 512

_ID_RE: Final = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
_HANDLE_RE: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
_SCOPE_RE: Final = re.compile(r"[a-z_]{1,64}(?::[a-z_]{1,64})?")
_EMAIL_RE: Final = re.compile(r"[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")

SUBJECT_KINDS: Final = ("user", "service_account")


def check_id(field: str, value: str) -> str:
    """An id chosen by the platform: 1-128 chars of letters, digits and ``._:@-``."""
    if not value:
        raise InvalidArgument(field, "is required")
    if len(value) > ID_MAX or not _ID_RE.fullmatch(value):
        raise InvalidArgument(field, "must be 1-128 characters of letters, digits and ._:@-")
    return value


def check_optional_id(field: str, value: str) -> str:
    """Like :func:`check_id`, but empty means "mint one"."""
    return check_id(field, value) if value else ""


def check_subject(field: str, value: str) -> tuple[str, str]:
    """``user:<id>`` or ``service_account:<id>``; returns ``(kind, id)``."""
    kind, sep, ident = value.partition(":")
    if not sep or kind not in SUBJECT_KINDS:
        raise InvalidArgument(field, "must be user:<id> or service_account:<id>")
    check_id(field, ident)
    return kind, ident


def check_handle(field: str, value: str) -> str:
    """Lower-case letters, digits and inner hyphens, 1-64 characters."""
    if not value or len(value) > HANDLE_MAX or not _HANDLE_RE.fullmatch(value):
        raise InvalidArgument(field, "must be 1-64 lower-case letters, digits and inner hyphens")
    return value


def check_name(field: str, value: str, *, required: bool = True) -> str:
    """Printable text without control characters, at most 200 characters."""
    if not value.strip():
        if required:
            raise InvalidArgument(field, "is required")
        return ""
    if len(value) > NAME_MAX:
        raise InvalidArgument(field, f"must be at most {NAME_MAX} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidArgument(field, "must not contain control characters")
    return value.strip()


def check_email(field: str, value: str) -> str:
    """An address of at most 254 characters; returned lower-cased (R6 compares case-insensitively)."""
    if not value or len(value) > EMAIL_MAX or not _EMAIL_RE.fullmatch(value):
        raise InvalidArgument(field, "must be an email address of at most 254 characters")
    return value.lower()


def check_scope_name(field: str, value: str) -> str:
    """Syntax only; whether the scope exists is the catalog's business."""
    if not value or len(value) > SCOPE_MAX * 2 + 1 or not _SCOPE_RE.fullmatch(value):
        raise InvalidArgument(field, "must be a scope name such as see_flows or create:invitation")
    return value


def check_page_size(field: str, value: int) -> int:
    """0 means the default (100); at most 1,000."""
    if value < 0 or value > PAGE_SIZE_MAX:
        raise InvalidArgument(field, f"must be between 0 and {PAGE_SIZE_MAX}")
    return value or PAGE_SIZE_DEFAULT


def check_count(field: str, count: int, maximum: int, *, minimum: int = 1) -> int:
    if count < minimum or count > maximum:
        raise InvalidArgument(field, f"must hold between {minimum} and {maximum} items")
    return count


def check_limit(field: str, value: int) -> int:
    """A plan limit (R10): 0 means "default" or "unchanged", else 1-1,000,000."""
    if value < 0 or value > LIMIT_MAX:
        raise InvalidArgument(field, f"must be between 0 and {LIMIT_MAX}")
    return value


def check_description(field: str, value: str) -> str:
    """Free text of at most 1,000 characters; tabs and newlines allowed, other controls not."""
    if len(value) > DESCRIPTION_MAX:
        raise InvalidArgument(field, f"must be at most {DESCRIPTION_MAX} characters")
    if any((ord(c) < 32 and c not in "\t\n") or ord(c) == 127 for c in value):
        raise InvalidArgument(field, "must not contain control characters")
    return value.strip()


def encode_page_token(key: str) -> str:
    """The opaque token that resumes a list after ``key`` (keyset paging)."""
    return base64.urlsafe_b64encode(key.encode()).decode("ascii")


def decode_page_token(field: str, token: str) -> str:
    """The key a token resumes after; "" for the first page. InvalidArgument when malformed."""
    if not token:
        return ""
    if len(token) > PAGE_TOKEN_MAX:
        raise InvalidArgument(field, "is not a token this server issued")
    try:
        key = base64.urlsafe_b64decode(token.encode("ascii")).decode()
    except (ValueError, UnicodeError):
        raise InvalidArgument(field, "is not a token this server issued") from None
    # Keys are ids, handles, names and revisions, none of which holds a control character
    # (a NUL reached PostgreSQL, which refused it: UNAVAILABLE; SQLite took it as a key).
    if not key or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidArgument(field, "is not a token this server issued")
    return key
