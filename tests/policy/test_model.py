"""``model.conf`` is evaluated by the engine's compiled matcher alone: a model it cannot
compile is refused when the policies are loaded (server start-up), never evaluated some
other way."""

from __future__ import annotations

from pathlib import Path

import pytest

from orgauthz.domain import lines as L
from orgauthz.domain.policy import load_policy, parse_policy
from orgauthz.engine.enforcer import OrgEnforcer
from orgauthz.errors import PolicyError
from tests.policy.conftest import edit

EFFECT = "e = some(where (p.eft == allow))"
MATCHER_START = "m = g2(p.obj, r.obj) && "

# (id, old text, new text, expected message): models Casbin loads and the engine refuses.
UNCOMPILABLE = [
    (
        "deny-override effect",
        EFFECT,
        "e = !some(where (p.eft == deny))",
        "the effect must be some(where (p.eft == allow))",
    ),
    (
        "priority effect",
        EFFECT,
        "e = priority(p.eft) || deny",
        "the effect must be some(where (p.eft == allow))",
    ),
    (
        "matcher with `in`",
        MATCHER_START,
        'm = g2(p.obj, r.obj) && r.dom in ("ws:a", "ws:b") && ',
        "the matcher cannot be compiled at `r.dom in ('ws:a', 'ws:b')`",
    ),
    (
        "matcher with a number",
        MATCHER_START,
        "m = g2(p.obj, r.obj) && 1 == 1 && ",
        "the matcher cannot be compiled at `1`: only string constants",
    ),
    (
        "matcher calling an unknown function",
        MATCHER_START,
        "m = g2(p.obj, r.obj) && g9(r.sub) && ",
        "the matcher cannot be compiled at `g9(r.sub)`: not a call of a known function",
    ),
]
CASES = [pytest.param(*case[1:], id=case[0]) for case in UNCOMPILABLE]


@pytest.mark.parametrize(("old", "new", "message"), CASES)
def test_load_refuses_a_model_the_engine_cannot_compile(catalog: Path, old: str, new: str, message: str) -> None:
    line = edit(catalog / "model.conf", old, new)
    with pytest.raises(PolicyError) as refused:
        load_policy(catalog)
    assert message in str(refused.value)
    assert (refused.value.file, refused.value.line) == (str(catalog / "model.conf"), line)


@pytest.mark.parametrize(("old", "new", "message"), CASES)
def test_an_organization_is_never_evaluated_with_a_model_that_does_not_compile(
    catalog: Path, old: str, new: str, message: str
) -> None:
    """Built past the start-up check (parse_policy does not judge), the enforcer refuses too:
    there is no Casbin-interpreter fallback."""
    edit(catalog / "model.conf", old, new)
    policy = parse_policy(catalog)
    with pytest.raises(PolicyError) as refused:
        OrgEnforcer(policy, L.org_domain("acme"), [], L.include_lines(policy), [])
    assert message in str(refused.value)
    assert refused.value.file == str(catalog / "model.conf")


def test_load_accepts_the_shipped_model_and_a_reworded_matcher(catalog: Path) -> None:
    load_policy(catalog)
    # Another matcher of the accepted form (== and != on values, string constants) compiles.
    edit(catalog / "model.conf", MATCHER_START, 'm = g2(p.obj, r.obj) && r.obj != "" && ')
    load_policy(catalog)
