"""Documented bounds on every input field (SPEC §4), checked before anything runs.

Each checker returns the value it accepted or raises :class:`InvalidArgument`
naming the field. docs/api.md lists the same bounds.

**Text** (names, descriptions, emails: :func:`check_text`) refuses, wherever it comes from
(an RPC or ``orgauthz import``), what SPEC §4 names: every control character (Unicode
category Cc: C0, DEL and C1), every format character (Cf: bidirectional embeddings,
overrides, isolates and marks, zero-width space, joiner and non-joiner, word joiner,
invisible operators, byte order mark, soft hyphen, Mongolian vowel separator, tag
characters), line and paragraph separators (Zl, Zp), lone surrogates (Cs; only the
importer's JSON can carry one), and the few other characters that draw nothing on their
own (:data:`_INVISIBLE`). Cf holds the zero-width joiner that glues some emoji sequences
(a family, a profession with a skin tone) and the non-joiner some scripts spell with: they
are refused too, because an authorization service is better off with a name drawn as two
emoji than with two names drawn alike. Variation selectors stay (they choose how the
character before them is drawn, as in ❤️), and so do private-use and unassigned code points
(refusing unassigned ones would refuse each new emoji until Python's Unicode data has it).

**Page tokens** (:func:`encode_page_token`) carry a check value over the key they resume
after, so a token this server did not issue (made up, altered, cut or extended) is refused
on every list. The check is not a secret: a token is a position, not a capability, and
every page is authorized as the first one is.
"""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata
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
_SCOPE_RE: Final = re.compile(r"[a-z_]{1,64}(?::[a-z_-]{1,64})?")
_EMAIL_RE: Final = re.compile(r"[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")

SUBJECT_KINDS: Final = ("user", "service_account")

_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Default-ignorable code points outside those categories, drawn as nothing on their own:
# the combining grapheme joiner, the Hangul fillers (a "blank" name), the Khmer inherent
# vowels, and the ranges Unicode reserves as default-ignorable (renderers draw nothing for
# them even before they are assigned). Variation selectors (U+FE00-FE0F, U+E0100-E01EF) and
# the Mongolian free variation selectors are not here: they only choose a glyph.
_INVISIBLE: Final = frozenset(
    chr(c)
    for first, last in (
        (0x034F, 0x034F),
        (0x115F, 0x1160),
        (0x17B4, 0x17B5),
        (0x2065, 0x2065),
        (0x3164, 0x3164),
        (0xFFA0, 0xFFA0),
        (0xFFF0, 0xFFF8),
        (0xE0000, 0xE00FF),
        (0xE01F0, 0xE0FFF),
    )
    for c in range(first, last + 1)
)


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


def check_grantee_subject(field: str, value: str) -> tuple[str, str]:
    """A subject a workspace role may be given to: :func:`check_subject`, or ``team:<id>`` (R25)."""
    kind, sep, ident = value.partition(":")
    if sep and kind == "team":
        check_id(field, ident)
        return kind, ident
    try:
        return check_subject(field, value)
    except InvalidArgument:
        raise InvalidArgument(field, "must be user:<id>, service_account:<id> or team:<id>") from None


OBJECT_KINDS: Final = ("deployment", "work_pool", "block")  # R26; scopes.yaml's object_acls
ACL_ENTRIES_MAX: Final = 1000  # entries of one ACL
ACLS_PER_WORKSPACE_MAX: Final = 100_000  # objects of one workspace with an ACL
POOL_LINKS_PER_WORKSPACE_MAX: Final = 100_000  # deployments of one workspace naming a work pool (R27)


def check_object(field: str, value: str) -> tuple[str, str]:
    """``deployment:<id>``, ``work_pool:<id>`` or ``block:<id>`` (R26); returns ``(kind, id)``."""
    kind, sep, ident = value.partition(":")
    if not sep or kind not in OBJECT_KINDS:
        raise InvalidArgument(field, "must be deployment:<id>, work_pool:<id> or block:<id>")
    check_id(field, ident)
    return kind, ident


def check_acl_actor(field: str, value: str) -> tuple[str, str]:
    """Who an ACL entry names: ``user:<id>``, ``service_account:<id>`` or ``team:<id>`` (R26)."""
    return check_grantee_subject(field, value)


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


def refused_character(value: str) -> str | None:
    """The first character of ``value`` no text field may hold (see the module docstring);
    None when there is none."""
    for c in value:
        if unicodedata.category(c) in _REFUSED_CATEGORIES or c in _INVISIBLE:
            return c
    return None


def check_text(field: str, value: str) -> str:
    """``value`` when it holds no control or invisible formatting character; InvalidArgument
    naming the field and the first such character otherwise."""
    c = refused_character(value)
    if c is not None:
        raise InvalidArgument(field, f"must not contain control or invisible formatting characters (U+{ord(c):04X})")
    return value


def check_name(field: str, value: str, *, required: bool = True) -> str:
    """Text (:func:`check_text`) of at most 200 characters, returned trimmed."""
    if not value.strip():
        if required:
            raise InvalidArgument(field, "is required")
        return ""
    if len(value) > NAME_MAX:
        raise InvalidArgument(field, f"must be at most {NAME_MAX} characters")
    return check_text(field, value).strip()


def check_email(field: str, value: str) -> str:
    """An address of at most 254 characters, text (:func:`check_text`); returned lower-cased
    (R6 compares case-insensitively)."""
    if not value or len(value) > EMAIL_MAX or not _EMAIL_RE.fullmatch(value):
        raise InvalidArgument(field, "must be an email address of at most 254 characters")
    return check_text(field, value).lower()


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
    """Text (:func:`check_text`) of at most 1,000 characters, returned trimmed. Like every
    text field it refuses every control character, tab and newline included (SPEC §4)."""
    if len(value) > DESCRIPTION_MAX:
        raise InvalidArgument(field, f"must be at most {DESCRIPTION_MAX} characters")
    return check_text(field, value).strip()


# A token is base64url(check + key): 8 bytes of BLAKE2b over the key's UTF-8, then the key.
# The longest key a list resumes after (an organization and a workspace id, 257 bytes)
# makes a token of 356 characters, inside PAGE_TOKEN_MAX.
_TOKEN_CHECK_BYTES: Final = 8
_TOKEN_PERSON: Final = b"orgauthz-page-v1"


def _token(key: bytes) -> str:
    check = hashlib.blake2b(key, digest_size=_TOKEN_CHECK_BYTES, person=_TOKEN_PERSON).digest()
    return base64.urlsafe_b64encode(check + key).decode("ascii")


def encode_page_token(key: str) -> str:
    """The opaque token that resumes a list after ``key`` (keyset paging); every list issues
    its tokens here."""
    return _token(key.encode())


def decode_page_token(field: str, token: str) -> str:
    """The key a token from :func:`encode_page_token` resumes after; "" for the first page.
    Anything else (too long, not base64url as issued, a check that does not match) raises
    InvalidArgument naming ``field``."""
    if not token:
        return ""
    refused = InvalidArgument(field, "is not a token this server issued")
    if len(token) > PAGE_TOKEN_MAX or not token.isascii():
        raise refused
    try:
        raw = base64.urlsafe_b64decode(token)
    except ValueError:
        raise refused from None
    body = raw[_TOKEN_CHECK_BYTES:]
    # Encoding again, check included, must give the same characters: a changed check, a
    # changed key, dropped or added characters and non-canonical base64 all differ.
    if not body or _token(body) != token:
        raise refused
    try:
        key = body.decode()
    except UnicodeError:
        raise refused from None
    # Keys are ids, handles, names and revisions: none holds a control character (a NUL
    # would reach PostgreSQL, which refuses it).
    if refused_character(key) is not None:
        raise refused
    return key
