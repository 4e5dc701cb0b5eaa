"""Tokens and API keys: prefix parsing (table-driven), hashing and masking (R12, R14)."""

from __future__ import annotations

import pytest

from orgauthz.services import secrets as sec

BODY = "A" * 20 + "b_-9" * 5  # 40 URL-safe characters


@pytest.mark.parametrize(
    ("value", "body"),
    [
        (f"pnb_{BODY}", BODY),  # a service account key
        (f"pnu_{BODY}", None),  # Prefect's user-key prefix: not ours
        (f"PNB_{BODY}", None),  # prefixes are case-sensitive
        (f"pnb{BODY}", None),  # no separator
        (f"pnb_{BODY[:-1]}", None),  # truncated
        (f"pnb_{BODY}x", None),  # too long
        (f" pnb_{BODY}", None),  # surrounding whitespace is not trimmed
        (f"pnb_{BODY}\n", None),
        (f"pnb_{BODY[:-1]}=", None),  # outside the URL-safe alphabet
        (f"pnb_{BODY[:-1]}é", None),
        ("pnb_", None),
        ("", None),
        ("pnb_" + "A" * 10_000, None),  # absurdly long: refused before any work
    ],
)
def test_r12_api_key_prefix_parsing(value: str, body: str | None) -> None:
    assert sec.parse_api_key(value) == body


def test_r12_new_keys_are_well_formed_random_and_masked() -> None:
    keys = {sec.new_api_key() for _ in range(100)}
    assert len(keys) == 100
    for key in keys:
        assert key.startswith("pnb_")
        assert sec.parse_api_key(key) is not None
        masked = sec.mask(key)
        assert masked == f"pnb_{key[4:6]}…{key[-2:]}"
        assert key not in masked


def test_r5_tokens_are_random_and_stored_only_as_a_digest() -> None:
    token = sec.new_token()
    assert sec.is_token(token)
    assert not sec.is_token(token + "x")
    assert not sec.is_token("")
    stored = sec.digest(token)
    assert len(stored) == 64
    assert token not in stored
    assert sec.same_digest(stored, token)
    assert not sec.same_digest(stored, sec.new_token())


@pytest.mark.parametrize(
    ("value", "prefix"),
    [
        (f"pnb_{BODY}", "pnb_"),  # a service account key
        (f"pnu_{BODY}", "pnu_"),  # a user's personal key (R29)
        (f"PNU_{BODY}", None),
        (f"pnu{BODY}", None),
        (f"pnu_{BODY[:-1]}", None),
        (f"pnu_{BODY}x", None),
        (f"pnx_{BODY}", None),
        (f" pnu_{BODY}", None),
        ("pnu_", None),
        ("pnu_" + "A" * 10_000, None),
    ],
)
def test_r29_key_prefix_parsing_of_either_kind(value: str, prefix: str | None) -> None:
    assert sec.key_prefix(value) == prefix
    if prefix is not None:
        assert sec.parse_api_key(value, prefix) == BODY


def test_r29_user_keys_are_well_formed_random_and_masked() -> None:
    keys = {sec.new_api_key(sec.USER_KEY_PREFIX) for _ in range(100)}
    assert len(keys) == 100
    for key in keys:
        assert key.startswith("pnu_")
        assert sec.key_prefix(key) == "pnu_"
        assert sec.parse_api_key(key) is None  # not a service account key
        assert sec.mask(key) == f"pnu_{key[4:6]}…{key[-2:]}"
