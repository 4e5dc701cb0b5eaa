"""Fixtures for the policy tooling: a scratch copy of policies/ to break on purpose."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orgauthz.domain.policy import DEFAULT_POLICY_DIR


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    """A copy of the shipped policies/ (tests included) that a test may edit."""
    target = tmp_path / "policies"
    shutil.copytree(DEFAULT_POLICY_DIR, target)
    return target


def edit(path: Path, old: str, new: str) -> int:
    """Replaces the one occurrence of ``old``; returns the line where ``new`` starts."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1
