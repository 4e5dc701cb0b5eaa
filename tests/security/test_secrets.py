"""Secrets (R5, R9, R12, R14): API keys and invitation tokens are stored only as hashes (or
sealed, for mail waiting in the outbox); they never appear in a server process's log output
(at DEBUG), in an error message, or in audit details.
"""

from __future__ import annotations

import asyncio
import email
import re

import grpc
from aiosmtpd.controller import Controller

from orgauthz.api.server import App
from orgauthz.store.db import open_store
from orgauthz.v1 import authorization_pb2 as apb
from orgauthz.v1 import authorization_pb2_grpc as apbg
from orgauthz.v1 import invitations_pb2 as ipb
from orgauthz.v1 import invitations_pb2_grpc as ipbg
from orgauthz.v1 import service_accounts_pb2 as spb
from orgauthz.v1 import service_accounts_pb2_grpc as spbg
from tests.conftest import settings_for
from tests.faults.test_write_path_faults import Mailbox, pg_db  # noqa: F401  # the seeded database fixture
from tests.replicas.conftest import replicas  # noqa: F401  # the replica-process fixture, reused
from tests.support.orgs import ACME_FAULTS
from tests.support.rpcs import actor, dump
from tests.support.services import free_port


async def test_r12_r14_secrets_never_at_rest_in_logs_errors_or_audit(pg_db: str, replicas) -> None:  # noqa: F811
    r = replicas("a", pg_db, "", ORGAUTHZ_LOG_LEVEL="DEBUG")
    secrets: list[str] = []
    errors: list[str] = []
    async with grpc.aio.insecure_channel(r.address) as ch:
        sas, inv, authz = (
            spbg.ServiceAccountServiceStub(ch),
            ipbg.InvitationServiceStub(ch),
            apbg.AuthorizationServiceStub(ch),
        )
        created = await sas.CreateServiceAccount(
            spb.CreateServiceAccountRequest(organization="acme", id="bot", name="bot"), metadata=actor("admin")
        )
        rotated = await sas.RotateServiceAccountKey(
            spb.RotateServiceAccountKeyRequest(organization="acme", id="bot", grace_period_seconds=60),
            metadata=actor("admin"),
        )
        invited = await inv.CreateInvitations(
            ipb.CreateInvitationsRequest(organization="acme", emails=["x@example.test", "y@example.test"]),
            metadata=actor("admin"),
        )
        tokens = [x.token for x in invited.results]
        await inv.AcceptInvitation(
            ipb.AcceptInvitationRequest(token=tokens[0], email="x@example.test"), metadata=actor("xuser")
        )
        secrets += [created.api_key, rotated.api_key, *tokens]
        wrong = [created.api_key[:-1] + "Z", "pnb_" + "Q" * 40, tokens[0][:-1] + "Z", "pnb_short"]
        for attempt in [*wrong, tokens[0]]:
            for call in (
                authz.Authenticate(apb.AuthenticateRequest(api_key=attempt)),
                sas.ListServiceAccounts(
                    spb.ListServiceAccountsRequest(organization="acme"), metadata=(("x-orgauthz-api-key", attempt),)
                ),
                inv.AcceptInvitation(
                    ipb.AcceptInvitationRequest(token=attempt, email="y@example.test"), metadata=actor("yuser")
                ),
            ):
                try:
                    await call
                except grpc.aio.AioRpcError as exc:
                    errors.append(exc.details() or "")
        secrets += wrong
    r.stop()
    db = open_store(pg_db)
    try:
        stored = dump(db)
    finally:
        db.dispose()
    log = r.log_path.read_text(errors="replace")
    assert "DEBUG" in log or "INFO" in log  # the log was written
    assert "pnb_" in stored  # masked keys are there, and only masked
    for secret in secrets:
        body = secret.removeprefix("pnb_")
        for where, text in (("a table", stored), ("the log", log), ("an error message", "\n".join(errors))):
            assert secret not in text and body not in text, f"a secret appears in {where}"  # noqa: PT018  # one secret, three places
    print(
        f"\n[secrets] {len(secrets)} keys and tokens (incl. failed attempts): none in {stored.count(chr(10))} "
        f"table rows, {log.count(chr(10))} log lines (DEBUG), {len(errors)} error messages or audit details"
    )


async def test_r9_queued_invitation_mail_is_sealed_at_rest(pg_db: str) -> None:  # noqa: F811
    port, box = free_port(), Mailbox()
    app = App(
        settings_for(
            pg_db,
            migrate=False,
            smtp_host="127.0.0.1",
            smtp_port=port,
            secret_key="s" * 32,
            outbox_poll_interval_s=0.1,
            outbox_retry_base_s=0.1,
            outbox_retry_max_s=0.3,
        )
    )
    await app.start()
    smtp = None
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            await ipbg.InvitationServiceStub(ch).CreateInvitations(
                ipb.CreateInvitationsRequest(organization="acme", emails=["q@example.test"]), metadata=actor("admin")
            )
        assert app.db is not None
        while_queued = dump(app.db)  # the mail server is down: the mail waits in the outbox
        smtp = Controller(box, hostname="127.0.0.1", port=port)
        smtp.start()
        for _ in range(100):
            if box.messages:
                break
            await asyncio.sleep(0.1)
        body = str(email.message_from_bytes(box.messages[0].content).get_payload(decode=True).decode())
        token = re.search(r"token=([A-Za-z0-9_-]{43})", body)
        assert token is not None, body
        assert token.group(1) not in while_queued
        assert token.group(1) not in dump(app.db)
    finally:
        if smtp is not None:
            smtp.stop()
        await app.stop(0)
    assert ACME_FAULTS["id"] == "acme"
