"""Durable invitation email (R9): rows written in the invitation's transaction, sent later.

:func:`enqueue` is the ``outbox`` row a write's decision inserts, so an invitation and its
email commit together or not at all. :class:`OutboxSender` runs in the server (started by
``App.start``): it takes due rows, sends each with :mod:`smtplib` in a thread, and marks it
sent only after the mail server accepted it. A failure counts an attempt and schedules the
next one with exponential backoff and full jitter, so a mail server that is down delays
mail and loses none. Delivery is at least once: a crash between the server's acceptance and
the ``sent_at`` update sends that mail again.

Rows are claimed with a conditional update of ``next_attempt_at`` (a lease), so replicas
sharing a database do not send the same row at the same time. Once sent, the body (which
holds the one-time accept link) is cleared; until then it sits in the table as it would
in any mail spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import select, update

from orgauthz.config import Settings
from orgauthz.services import secrets as sec
from orgauthz.store import base as store
from orgauthz.store.base import Store, Write, utcnow
from orgauthz.store.models import Outbox

log = logging.getLogger(__name__)

INVITATION = "invitation"
SENT_BODY = "(delivered; the body held a one-time link and was removed)"
LEASE = timedelta(seconds=120)  # a claimed row is not taken by another sender this long
BATCH = 50


@dataclass(frozen=True)
class Mail:
    """What writes that queue invitation email need of the settings (R9)."""

    enabled: bool  # an SMTP server is set: tokens travel by email, not in the answer
    secret_key: str  # seals bodies at rest
    accept_url_template: str  # the accept link, ``{token}`` replaced
    invitation_ttl_s: int  # an invitation's default expiry (R5)

    @classmethod
    def of(cls, settings: Settings) -> Mail:
        return cls(
            enabled=bool(settings.smtp_host),
            secret_key=settings.secret_key,
            accept_url_template=settings.accept_url_template,
            invitation_ttl_s=settings.invitation_ttl_s,
        )


def enqueue(mail: Mail, *, kind: str, recipient: str, subject: str, body: str, now: datetime) -> Write:
    """One mail for a write's decision to insert (in the write's transaction), due at once;
    the body is sealed."""
    return store.insert(
        Outbox,
        {
            "kind": kind,
            "recipient": recipient,
            "subject": subject,
            "body": sec.seal(mail.secret_key, body),
            "attempts": 0,
            "next_attempt_at": now,
            "sent_at": None,
            "last_error": None,
        },
    )


def invitation_mail(mail: Mail, *, org_name: str, role: str, token: str, expires_at: datetime) -> tuple[str, str]:
    """Subject and body of an invitation email with its accept link."""
    link = mail.accept_url_template.replace("{token}", token)
    subject = f"You are invited to join {org_name}"
    body = (
        f"You have been invited to join {org_name} with the role {role}.\n\n"
        f"Accept the invitation here:\n{link}\n\n"
        f"The link works once and expires on {expires_at:%Y-%m-%d %H:%M} UTC.\n"
        "If you did not expect this invitation, ignore this email.\n"
    )
    return subject, body


def backoff(attempts: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``attempts``-th failure: full jitter over min(cap, base*2^(n-1))."""
    ceiling = min(cap, base * 2 ** max(0, attempts - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


@dataclass
class _Due:
    id: int
    recipient: str
    subject: str
    body: str
    attempts: int


class OutboxSender:
    """Sends due outbox rows until stopped. One per server; safe with several replicas."""

    def __init__(self, db: Store, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.sent = 0
        self.failures = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="orgauthz-outbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def nudge(self) -> None:
        """Looks for due mail now rather than at the next poll (after an invitation write)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                while await self.send_due():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be down: try again at the next poll
                log.warning("outbox: cannot read due mail; retrying", exc_info=True)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.outbox_poll_interval_s)

    async def send_due(self) -> int:
        """Sends what is due now; returns how many rows were tried."""
        rows = await asyncio.to_thread(self._claim)
        for row in rows:
            try:
                await asyncio.to_thread(self._deliver, row)
            except (OSError, smtplib.SMTPException, ValueError) as exc:
                self.failures += 1
                await asyncio.to_thread(self._failed, row, f"{type(exc).__name__}: {exc}"[:500])
                log.warning(
                    "outbox: mail %d not delivered (attempt %d): %s", row.id, row.attempts + 1, type(exc).__name__
                )
            else:
                self.sent += 1
                await asyncio.to_thread(self._delivered, row)
        return len(rows)

    def _claim(self) -> list[_Due]:
        now = utcnow()
        claimed: list[_Due] = []
        with self.db.engine.begin() as conn:
            due = conn.execute(
                select(
                    Outbox.id, Outbox.recipient, Outbox.subject, Outbox.body, Outbox.attempts, Outbox.next_attempt_at
                )
                .where(Outbox.sent_at.is_(None), Outbox.next_attempt_at <= now)
                .order_by(Outbox.next_attempt_at, Outbox.id)
                .limit(BATCH)
            ).all()
        for r in due:
            with self.db.engine.begin() as conn:
                took = conn.execute(
                    update(Outbox)
                    .where(Outbox.id == r.id, Outbox.sent_at.is_(None), Outbox.next_attempt_at == r.next_attempt_at)
                    .values(next_attempt_at=now + LEASE)
                ).rowcount
            if took == 1:
                claimed.append(_Due(r.id, r.recipient, r.subject, r.body, r.attempts))
        return claimed

    def _deliver(self, row: _Due) -> None:
        s = self.settings
        msg = EmailMessage()
        msg["From"] = s.smtp_sender
        msg["To"] = row.recipient
        msg["Subject"] = row.subject
        msg.set_content(sec.unseal(s.secret_key, row.body))
        smtp: smtplib.SMTP
        if s.smtp_ssl:
            smtp = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=30, context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=30)
        with smtp:
            if s.smtp_starttls and not s.smtp_ssl:
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_username:
                smtp.login(s.smtp_username, s.smtp_password)
            smtp.send_message(msg)

    def _delivered(self, row: _Due) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                update(Outbox)
                .where(Outbox.id == row.id)
                .values(sent_at=utcnow(), attempts=row.attempts + 1, body=SENT_BODY, last_error=None)
            )

    def _failed(self, row: _Due, error: str) -> None:
        attempts = row.attempts + 1
        delay = backoff(attempts, base=self.settings.outbox_retry_base_s, cap=self.settings.outbox_retry_max_s)
        with self.db.engine.begin() as conn:
            conn.execute(
                update(Outbox)
                .where(Outbox.id == row.id)
                .values(attempts=attempts, last_error=error, next_attempt_at=utcnow() + timedelta(seconds=delay))
            )
