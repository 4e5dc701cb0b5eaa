"""Invitation email through the outbox, against a real SMTP server on loopback (R9)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from email import message_from_bytes
from email.message import Message
from typing import Any

import grpc
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from orgauthz.api.server import App
from orgauthz.services import outbox
from orgauthz.store.models import Outbox
from orgauthz.v1 import invitations_pb2 as pb
from orgauthz.v1 import invitations_pb2_grpc as pb_grpc
from tests.conftest import settings_for
from tests.support.orgs import ACME_MAIL, doc, seed
from tests.support.services import free_port

ACTOR = (("x-orgauthz-actor", "user:alice"),)
LINK = re.compile(r"https://app\.example/invitations/accept\?token=([A-Za-z0-9_-]+)")


class Inbox:
    """aiosmtpd handler keeping every message it accepted."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd hook
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


async def eventually(cond: Callable[[], bool], what: str, deadline_s: float = 30) -> None:
    """Waits until ``cond()`` holds; fails after the deadline (a bound, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
async def mail_app(store_url: str, smtp_port: int, policy) -> AsyncIterator[App]:
    app = App(
        settings_for(
            store_url,
            smtp_host="127.0.0.1",
            secret_key="outbox-test-key",
            smtp_port=smtp_port,
            smtp_sender="orgauthz@acme.test",
            outbox_poll_interval_s=0.05,
            outbox_retry_base_s=0.05,
            outbox_retry_max_s=0.2,
        )
    )
    await app.start()
    await app.feed.wait_for(seed(app.db, policy, doc(ACME_MAIL)), 10)
    yield app
    await app.stop(0)


@pytest.fixture
async def invites(mail_app: App) -> AsyncIterator[pb_grpc.InvitationServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mail_app.port}") as ch:
        yield pb_grpc.InvitationServiceStub(ch)


def rows(app: App) -> list[Any]:
    with app.db.engine.connect() as conn:
        return list(conn.execute(select(Outbox).order_by(Outbox.id)))


async def test_r9_invitation_is_emailed_with_its_accept_link(mail_app: App, invites, smtp_port: int) -> None:
    inbox = Inbox()
    server = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    server.start()
    try:
        r = await invites.CreateInvitations(
            pb.CreateInvitationsRequest(organization="acme", emails=["Dan@Example.com"]), metadata=ACTOR
        )
        assert r.results[0].outcome == pb.INVITATION_OUTCOME_INVITED
        assert r.results[0].token == ""  # with SMTP the token only travels by email
        await eventually(lambda: len(inbox.messages) == 1, "the invitation email")
    finally:
        server.stop()
    mail = inbox.messages[0]
    assert mail["To"] == "dan@example.com"
    assert mail["From"] == "orgauthz@acme.test"
    assert "Acme Inc." in mail["Subject"]
    found = LINK.search(mail.get_payload(decode=True).decode())
    assert found, "the email carries the accept link"
    await eventually(lambda: rows(mail_app)[0].sent_at is not None, "the row marked sent")
    row = rows(mail_app)[0]
    assert row.body == outbox.SENT_BODY
    assert found.group(1) not in row.body
    done = await invites.AcceptInvitation(
        pb.AcceptInvitationRequest(token=found.group(1), user_id="dan", email="dan@example.com"),
        metadata=(("x-orgauthz-actor", "user:dan"),),
    )
    assert done.invitation.status == pb.INVITATION_STATUS_ACCEPTED


async def test_r9_mail_server_down_loses_nothing_and_delivers_once(mail_app: App, invites, smtp_port: int) -> None:
    r = await invites.CreateInvitations(
        pb.CreateInvitationsRequest(organization="acme", emails=["dan@example.com", "erin@example.com"]), metadata=ACTOR
    )
    assert all(x.outcome == pb.INVITATION_OUTCOME_INVITED for x in r.results)
    # Nothing listens on the port: every attempt fails and is counted; no row is dropped.
    await eventually(lambda: all(x.attempts >= 3 for x in rows(mail_app)), "failed attempts to be counted")
    pending = rows(mail_app)
    assert len(pending) == 2
    assert all(x.sent_at is None and x.last_error for x in pending)
    inbox = Inbox()
    server = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    server.start()
    try:
        await eventually(lambda: all(x.sent_at is not None for x in rows(mail_app)), "delivery once back")
        assert mail_app.outbox is not None
        assert await mail_app.outbox.send_due() == 0  # nothing left to send
    finally:
        server.stop()
    assert sorted(m["To"] for m in inbox.messages) == ["dan@example.com", "erin@example.com"]
    # While they waited, the queued bodies were sealed: the delivered links' tokens never
    # appeared in the table.
    tokens = [LINK.search(m.get_payload(decode=True).decode()).group(1) for m in inbox.messages]
    assert all(t not in str(x.body) and "token=" not in str(x.body) for t in tokens for x in pending)


def test_r9_a_server_with_smtp_needs_a_secret_key(store_url: str) -> None:
    with pytest.raises(ValueError, match="SECRET_KEY"):
        asyncio.run(App(settings_for(store_url, smtp_host="127.0.0.1", smtp_port=free_port())).start())


def test_r9_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    import random

    rng = random.Random(7)
    for attempts, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (6, 60.0), (30, 60.0)]:
        delays = [outbox.backoff(attempts, base=2.0, cap=60.0, rng=rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered
