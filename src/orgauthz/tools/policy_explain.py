"""``orgauthz explain SUBJECT TARGET SCOPE``: the decision and every path that grants it.

Against a server (``--server``) it asks ``Check(explain=true)`` and prints the reasons the
server gives. Against a database (``--database-url``) it builds the
:class:`orgauthz.engine.engine.Engine` over the store and prints each granting path with
the role it is inherited from (custom roles inheriting a built-in role included). For a
denial both print what the subject holds there and the nearest missing piece.

Exit codes: 0 allowed, 1 denied, 2 error (unreachable server, bad request, unreadable store).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from typing import TextIO

from orgauthz.domain.policy import ORGANIZATION, WORKSPACE, PolicySet, load_policy
from orgauthz.errors import OrgAuthzError

_ROLE_REASON = re.compile(r"^(organization role|workspace role|default workspace role) (\S+)")


def run_explain(opts: argparse.Namespace, *, out: TextIO) -> int:
    from orgauthz.admin_cli import tls_asked
    from orgauthz.tools.policy_cli import default_policy_dir

    policy_dir = opts.policy_dir or default_policy_dir()
    try:
        policy = load_policy(policy_dir)
        if opts.server:
            allowed, lines = _ask_server(opts, policy)
        elif tls_asked(opts) or opts.tls_server_name:
            raise _Failed("the --tls options are for --server; --database-url reads the store directly")
        else:
            allowed, lines = asyncio.run(_ask_database(opts, policy))
    except OrgAuthzError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except _Failed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    where = f"organization {opts.target}" if opts.organization else f"workspace {opts.target}"
    if opts.object:
        where = f"{opts.object} of {where}"
    verdict = "ALLOWED" if allowed else "DENIED"
    out.write(f"{verdict}: {opts.subject} {'may' if allowed else 'may not'} use {opts.scope} in {where}\n")
    out.write("".join(f"  - {line}\n" for line in lines))
    return 0 if allowed else 1


class _Failed(Exception):
    pass


def _ask_server(opts: argparse.Namespace, policy: PolicySet) -> tuple[bool, list[str]]:
    import grpc

    from orgauthz.admin_cli import UsageError, channel_from
    from orgauthz.v1 import authorization_pb2 as pb
    from orgauthz.v1 import authorization_pb2_grpc as pb_grpc

    req = pb.CheckRequest(
        subject=opts.subject, scope=opts.scope, explain=True, min_revision=opts.min_revision, object=opts.object
    )
    if opts.organization:
        req.organization = opts.target
    else:
        req.workspace = opts.target
    metadata = [("authorization", f"Bearer {opts.auth_token}")] if opts.auth_token else []
    try:
        channel = channel_from(opts)
    except UsageError as exc:
        raise _Failed(str(exc)) from None
    with channel:
        try:
            resp = pb_grpc.AuthorizationServiceStub(channel).Check(req, timeout=opts.timeout, metadata=metadata)
        except grpc.RpcError as exc:
            raise _Failed(f"{exc.code().name}: {exc.details()}") from None
    lines = []
    for reason in resp.reasons:
        lines.append(reason + _builtin_note(policy, reason, opts.scope))
    lines.append(f"decided at revision {resp.revision} by {opts.server}")
    return bool(resp.allowed), lines


def _builtin_note(policy: PolicySet, reason: str, scope: str) -> str:
    """For a built-in role named in a server's reason, the role it inherits the scope from."""
    match = _ROLE_REASON.match(reason)
    level = ORGANIZATION if match and match.group(1) == "organization role" else WORKSPACE
    if not match or policy.role(level, match.group(2)) is None:
        return ""
    source = _source(policy, level, match.group(2), scope)
    return f"; inherited from {source}" if source and source != match.group(2) else ""


def _source(policy: PolicySet, level: str, name: str, scope: str) -> str:
    granted_by = policy.included_by.get(scope, frozenset({scope}))
    chain, role = [], policy.role(level, name)
    while role is not None and role not in chain:
        chain.append(role)
        role = policy.role(level, role.inherits) if role.inherits else None
    for wanted in (frozenset({scope}), granted_by):
        for r in chain:
            if set(policy.expand_wildcard(r.scopes)) & wanted:
                return r.name
    return ""


async def _ask_database(opts: argparse.Namespace, policy: PolicySet) -> tuple[bool, list[str]]:
    from orgauthz.domain import bounds
    from orgauthz.domain import lines as L
    from orgauthz.domain.policy import ORGANIZATION, WORKSPACE
    from orgauthz.engine.engine import Engine
    from orgauthz.store.db import open_store

    bounds.check_subject("subject", opts.subject)
    level = ORGANIZATION if opts.organization else WORKSPACE
    opts.scope = policy.current_id(opts.scope)  # a renamed id is accepted for one release (R21)
    if not policy.is_scope(level, opts.scope):
        kind = "workspace scope" if level == WORKSPACE else "organization permission"
        raise _Failed(f"scope: unknown {kind} {opts.scope!r}")
    if opts.object:
        from orgauthz.engine.decisions import Decisions

        Decisions.check_object(opts.object, level)
    db = open_store(opts.database_url)
    try:
        engine = Engine(policy, db)
        await engine.start()
        target = engine.resolve(
            workspace="" if opts.organization else opts.target, organization=opts.target if opts.organization else ""
        )
        if target is None or not await engine.ensure_loaded(target.org_id):
            return False, [f"no such {level}: a plain deny"]
        res = L.object_need(policy, opts.target, opts.object, opts.scope) if opts.object else ""
        if not engine.decide(opts.subject, target, opts.scope, res):
            return False, [
                *engine.explain(opts.subject, target, opts.scope, res),
                f"decided at revision {engine.applied} from {_safe_url(opts.database_url)}",
            ]
        lines = []
        for path in engine.grant_paths(opts.subject, target, opts.scope):
            notes = []
            if path.custom:
                notes.append(f"custom role{', inherits ' + _inherits(engine, target.org_id, path.role)}")
            if path.source != path.role:
                notes.append(
                    f"{opts.scope if not path.included_by else path.included_by[0]} inherited from {path.source}"
                )
            lines.append(path.reason() + (f"; {'; '.join(notes)}" if notes else ""))
        if res:
            lines += engine.explain(opts.subject, target, opts.scope, res)[len(lines) :]
        lines.append(f"decided at revision {engine.applied} from {_safe_url(opts.database_url)}")
        return True, lines
    finally:
        db.dispose()


def _inherits(engine: object, org_id: str, role: str) -> str:
    custom = getattr(engine, "_custom_roles", {}).get(org_id, {})
    parent = custom[role].inherits if role in custom else ""
    return parent or "nothing"


def _safe_url(url: str) -> str:
    """The URL without a password."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
