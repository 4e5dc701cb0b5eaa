"""Operator commands that talk to a running server: ``org bootstrap``, ``service-account create``, ``invite``.

Each command makes one management call through :class:`orgauthz.client.Client`, as the
actor given by ``--actor user:<id>`` (``ORGAUTHZ_ACTOR``), with the shared secret of
``--auth-token`` or ``ORGAUTHZ_AUTH_TOKEN`` (the variable keeps it off the command line),
in plaintext or over TLS (``--tls``, ``--tls-ca``; mTLS with ``--tls-cert`` and ``--tls-key``).
They print what was done and exit 0, or print ``error: <STATUS>: <why>`` on stderr and
exit 2. Secrets the server hands back once (an API key, an invitation token when the server
sends no email) are printed once, on their own line, and never again.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import grpc

from orgauthz.client import Client, open_channel, tls_credentials

DEFAULT_SERVER = "127.0.0.1:50051"


class UsageError(Exception):
    """A missing or malformed option, found before calling the server."""


def _client(opts: argparse.Namespace, *, actor_required: bool) -> Client:
    token = opts.auth_token if opts.auth_token is not None else os.environ.get("ORGAUTHZ_AUTH_TOKEN", "")
    actor = opts.actor if opts.actor is not None else os.environ.get("ORGAUTHZ_ACTOR", "")
    if actor and not actor.startswith("user:"):
        raise UsageError(f"--actor must be user:<id>, not {actor!r}")
    if actor_required and not actor:
        raise UsageError("--actor user:<id> (or ORGAUTHZ_ACTOR) is required: the Admin this call acts for")
    return Client(
        opts.server,
        token=token,
        actor=actor,
        credentials=credentials_from(opts),
        server_name=opts.tls_server_name,
        timeout=opts.timeout,
    )


def add_tls_options(p: argparse.ArgumentParser) -> None:
    """TLS to the server: on with ``--tls`` or any of the files (plaintext otherwise)."""
    p.add_argument(
        "--tls", action="store_true", help="connect with TLS, verifying the server against the system's roots"
    )
    p.add_argument("--tls-ca", type=Path, help="CA (PEM) to verify the server's certificate with (implies --tls)")
    p.add_argument("--tls-cert", type=Path, help="client certificate (PEM) for mTLS, with --tls-key (implies --tls)")
    p.add_argument("--tls-key", type=Path, help="client private key (PEM) for mTLS, with --tls-cert")
    p.add_argument("--tls-server-name", default="", help="name the server's certificate must carry, if not the host")


def channel_from(opts: argparse.Namespace) -> grpc.Channel:
    """A blocking channel to ``opts.server``, over TLS when the options ask for it
    (:func:`add_tls_options`). UsageError as :func:`credentials_from`."""
    return open_channel(opts.server, credentials_from(opts), opts.tls_server_name)


def tls_asked(opts: argparse.Namespace) -> bool:
    """Whether any option of :func:`add_tls_options` but the server name turns TLS on."""
    return bool(opts.tls or opts.tls_ca or opts.tls_cert or opts.tls_key)


def credentials_from(opts: argparse.Namespace) -> grpc.ChannelCredentials | None:
    """The TLS credentials ``add_tls_options`` asked for, or None (plaintext). UsageError
    when the files do not make a client certificate or cannot be read."""
    if not tls_asked(opts):
        if opts.tls_server_name:
            raise UsageError("--tls-server-name needs TLS (--tls or --tls-ca)")
        return None
    try:
        return tls_credentials(ca=opts.tls_ca, cert=opts.tls_cert, key=opts.tls_key)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _run(opts: argparse.Namespace, body: Callable[[argparse.Namespace], int]) -> int:
    try:
        return body(opts)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
    return 2


# -- org bootstrap ---------------------------------------------------------------------------


def _bootstrap(opts: argparse.Namespace) -> int:
    from orgauthz.v1 import management_pb2 as pb

    limits = pb.Limits(
        max_members=opts.max_members, max_service_accounts=opts.max_service_accounts, max_workspaces=opts.max_workspaces
    )
    with _client(opts, actor_required=False) as c:
        r = c.stub("OrganizationService").CreateOrganization(
            pb.CreateOrganizationRequest(
                id=opts.id,
                handle=opts.handle,
                name=opts.name,
                admin_user_id=opts.admin_user,
                admin_email=opts.admin_email,
                limits=limits,
            ),
            timeout=c.timeout,
        )
    o = r.organization
    print(
        f"created organization {o.id} (handle {o.handle}, name {o.name!r}) with Owner user:{opts.admin_user} "
        f"at revision {r.revision}"
    )
    print(
        f"limits: {o.limits.max_members} members, {o.limits.max_service_accounts} service accounts, "
        f"{o.limits.max_workspaces} workspaces"
    )
    return 0


# -- service-account create ------------------------------------------------------------------


def _create_service_account(opts: argparse.Namespace) -> int:
    from orgauthz.v1 import service_accounts_pb2 as pb

    with _client(opts, actor_required=True) as c:
        r = c.stub("ServiceAccountService").CreateServiceAccount(
            pb.CreateServiceAccountRequest(
                organization=opts.org,
                id=opts.id,
                name=opts.name,
                org_role=opts.role,
                key_expires_in_seconds=opts.key_expires_in,
            ),
            timeout=c.timeout,
        )
    sa = r.service_account
    expires = r.api_key_expires_at.ToJsonString() if r.HasField("api_key_expires_at") else "never"
    print(
        f"created service account {sa.id} ({sa.name!r}) in {sa.organization} with role {sa.org_role} "
        f"at revision {r.revision}; key expires: {expires}"
    )
    print("API key (shown this once; store it now):", file=sys.stderr)
    print(r.api_key)
    return 0


# -- invite ----------------------------------------------------------------------------------


def _invite(opts: argparse.Namespace) -> int:
    from orgauthz.v1 import invitations_pb2 as pb

    with _client(opts, actor_required=True) as c:
        r = c.stub("InvitationService").CreateInvitations(
            pb.CreateInvitationsRequest(
                organization=opts.org, emails=opts.emails, org_role=opts.role, expires_in_seconds=opts.expires_in
            ),
            timeout=c.timeout,
        )
    failed = False
    for x in r.results:
        if x.outcome == pb.INVITATION_OUTCOME_INVITED:
            inv = x.invitation
            line = f"{x.email}: invited as {inv.org_role} ({inv.id}, expires {inv.expires_at.ToJsonString()})"
            print(line + (f"; token (shown once): {x.token}" if x.token else "; sent by email"))
        elif x.outcome == pb.INVITATION_OUTCOME_ALREADY_MEMBER:
            print(f"{x.email}: already a member")
        elif x.outcome == pb.INVITATION_OUTCOME_ALREADY_INVITED:
            print(f"{x.email}: already invited (a pending invitation exists)")
        else:
            failed = True
            print(f"{x.email}: error: {x.error}", file=sys.stderr)
    print(f"revision {r.revision}" if r.revision else "nothing written")
    return 2 if failed else 0


# -- wiring ----------------------------------------------------------------------------------


def _count(value: str) -> int:
    """A non-negative integer option (limits, lifetimes); 0 means the server's default."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return n


def _connection_opts(p: argparse.ArgumentParser, *, actor_help: str) -> None:
    p.add_argument(
        "--server",
        default=os.environ.get("ORGAUTHZ_SERVER", DEFAULT_SERVER),
        help=f"server address (ORGAUTHZ_SERVER; default {DEFAULT_SERVER})",
    )
    p.add_argument("--auth-token", help="shared secret the server requires (ORGAUTHZ_AUTH_TOKEN)")
    p.add_argument("--actor", help=actor_help)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    add_tls_options(p)


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``org bootstrap``, ``service-account create`` and ``invite`` to ``orgauthz``."""
    org = subparsers.add_parser("org", help="organizations on a running server")
    org_sub = org.add_subparsers(dest="org_command", required=True)
    boot = org_sub.add_parser(
        "bootstrap",
        help="create an organization with its first Owner",
        description="Create an organization with its first Owner (R1, R3). A platform operation: needs "
        "the caller's credentials; --actor is optional and recorded in the audit log.",
    )
    boot.add_argument("--handle", required=True, help="unique handle: lower-case letters, digits, inner hyphens")
    boot.add_argument("--name", required=True, help="display name")
    boot.add_argument("--admin-user", required=True, help="user id of the first Owner")
    boot.add_argument("--admin-email", default="", help="the Owner's email address")
    boot.add_argument("--id", default="", help="organization id (default: minted by the server)")
    boot.add_argument("--max-members", type=_count, default=0, help="plan limit (default: server default)")
    boot.add_argument("--max-service-accounts", type=_count, default=0, help="plan limit (default: server default)")
    boot.add_argument("--max-workspaces", type=_count, default=0, help="plan limit (default: server default)")
    _connection_opts(boot, actor_help="user:<id> asserted as the actor (ORGAUTHZ_ACTOR; optional here)")
    boot.set_defaults(func=lambda o: _run(o, _bootstrap))

    sa = subparsers.add_parser("service-account", help="service accounts on a running server")
    sa_sub = sa.add_subparsers(dest="sa_command", required=True)
    create = sa_sub.add_parser(
        "create",
        help="create a service account and print its API key once",
        description="Create a service account (R11, R12). Its API key is printed once, alone on the last "
        "line of stdout; the server keeps only its hash.",
    )
    create.add_argument("--org", required=True, help="organization id")
    create.add_argument("--name", required=True, help="name, unique in the organization")
    create.add_argument("--role", default="", help="Member (default) or a custom organization role id; never Admin")
    create.add_argument("--id", default="", help="service account id (default: minted by the server)")
    create.add_argument(
        "--key-expires-in",
        type=_count,
        default=0,
        metavar="SECONDS",
        help="key lifetime in seconds (default 0: never expires)",
    )
    _connection_opts(create, actor_help="user:<id> of an Admin (ORGAUTHZ_ACTOR; required)")
    create.set_defaults(func=lambda o: _run(o, _create_service_account))

    invite = subparsers.add_parser(
        "invite",
        help="invite people to an organization by email",
        description="Invite one or more addresses with one organization role (R5, R7, R8). Each address "
        "gets its own line; exit 2 when an address was malformed.",
    )
    invite.add_argument("emails", nargs="+", metavar="EMAIL", help="addresses to invite (at most 100)")
    invite.add_argument("--org", required=True, help="organization id")
    invite.add_argument("--role", default="Member", help="Admin, Member (default) or a custom organization role id")
    invite.add_argument(
        "--expires-in",
        type=_count,
        default=0,
        metavar="SECONDS",
        help="invitation lifetime (default: the server's, 7 days)",
    )
    _connection_opts(invite, actor_help="user:<id> of an Admin (ORGAUTHZ_ACTOR; required)")
    invite.set_defaults(func=lambda o: _run(o, _invite))
