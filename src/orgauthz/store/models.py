"""SQLAlchemy tables: the source of truth. Migrations in ``store/migrations`` create them.

Role references (``org_role``, ``role``, ``default_role``) name a built-in role
(``Admin``, ``Viewer``...) or a custom role by its id; custom role ids can never equal a
built-in name. Subjects are ``user:<id>`` or ``service_account:<id>``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID = String(128)
ROLE_REF = String(128)


class Base(DeclarativeBase):
    pass


class Change(Base):
    """One committed write. ``revision`` is the global, monotonically increasing revision.

    ``payload`` holds what replicas need to apply the change without a reload:
    Casbin lines added and removed and workspace ownership changes.
    """

    __tablename__ = "changes"
    revision: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    org_id: Mapped[str] = mapped_column(ID, index=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    committed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Organization(Base):
    __tablename__ = "organizations"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    handle: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    max_members: Mapped[int] = mapped_column(Integer)
    max_service_accounts: Mapped[int] = mapped_column(Integer)
    max_workspaces: Mapped[int] = mapped_column(Integer)
    # R10, migration 0007. Server-side default: writers that do not name it get 100.
    max_teams: Mapped[int] = mapped_column(Integer, server_default="100")
    revision: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Membership(Base):
    """A user's membership of an organization with exactly one organization role (R1)."""

    __tablename__ = "memberships"
    org_id: Mapped[str] = mapped_column(ID, ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id"), primary_key=True, index=True)
    org_role: Mapped[str] = mapped_column(ROLE_REF)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Workspace(Base):
    __tablename__ = "workspaces"
    __table_args__ = (UniqueConstraint("org_id", "handle"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org_id: Mapped[str] = mapped_column(ID, ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    handle: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    # None: No Access (R17 default).
    default_role: Mapped[str | None] = mapped_column(ROLE_REF)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # R15. Server-side default only: an insert that does not name it gets "" (migration 0004).
    description: Mapped[str] = mapped_column(Text, server_default="")


class WorkspaceGrant(Base):
    """A workspace role given to a member or service account of the owning organization (R16)."""

    __tablename__ = "workspace_grants"
    workspace_id: Mapped[str] = mapped_column(ID, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True)
    subject: Mapped[str] = mapped_column(String(160), primary_key=True, index=True)
    org_id: Mapped[str] = mapped_column(ID, index=True)
    role: Mapped[str] = mapped_column(ROLE_REF)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Team(Base):
    """A group of members and service accounts of one organization (R25). Its workspace roles
    are ``WorkspaceGrant`` rows with the subject ``team:<id>``."""

    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("org_id", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org_id: Mapped[str] = mapped_column(ID, ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TeamMember(Base):
    """A member (``user:<id>``) or service account (``service_account:<id>``) of a team (R25)."""

    __tablename__ = "team_members"
    __table_args__ = (Index("ix_team_members_org_subject", "org_id", "subject"),)
    team_id: Mapped[str] = mapped_column(ID, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    subject: Mapped[str] = mapped_column(String(160), primary_key=True)
    org_id: Mapped[str] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ObjectAcl(Base):
    """An object's access control list (R26): ``object`` is ``<kind>:<id>`` inside the
    workspace; ``revision`` is the revision that last wrote it (optimistic concurrency)."""

    __tablename__ = "object_acls"
    __table_args__ = (Index("ix_object_acls_org_id", "org_id"),)
    workspace_id: Mapped[str] = mapped_column(ID, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True)
    object: Mapped[str] = mapped_column(String(160), primary_key=True)
    org_id: Mapped[str] = mapped_column(ID)
    revision: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AclEntry(Base):
    """One actor (``user:``, ``service_account:`` or ``team:<id>``) listed on an ACL at a
    level; ``is_grant``: a grant entry (R26)."""

    __tablename__ = "acl_entries"
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "object"], ["object_acls.workspace_id", "object_acls.object"], ondelete="CASCADE"
        ),
        Index("ix_acl_entries_org_actor", "org_id", "actor"),
    )
    workspace_id: Mapped[str] = mapped_column(ID, primary_key=True)
    object: Mapped[str] = mapped_column(String(160), primary_key=True)
    actor: Mapped[str] = mapped_column(String(160), primary_key=True)
    org_id: Mapped[str] = mapped_column(ID)
    level: Mapped[str] = mapped_column(String(16))
    is_grant: Mapped[bool] = mapped_column(Boolean, default=False)


class DeploymentPool(Base):
    """The work pool a deployment names (R27), as the platform set it."""

    __tablename__ = "deployment_pools"
    __table_args__ = (Index("ix_deployment_pools_ws_pool", "workspace_id", "pool_id"),)
    workspace_id: Mapped[str] = mapped_column(ID, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(ID, primary_key=True)
    pool_id: Mapped[str] = mapped_column(ID)
    org_id: Mapped[str] = mapped_column(ID)
    revision: Mapped[int] = mapped_column(BigInteger)


class CustomRole(Base):
    """A named set of scopes at organization or workspace level, optionally inheriting a built-in (R22)."""

    __tablename__ = "custom_roles"
    __table_args__ = (UniqueConstraint("org_id", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org_id: Mapped[str] = mapped_column(ID, ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(16))  # "workspace" | "organization"
    inherits: Mapped[str | None] = mapped_column(ROLE_REF)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ServiceAccount(Base):
    __tablename__ = "service_accounts"
    __table_args__ = (UniqueConstraint("org_id", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org_id: Mapped[str] = mapped_column(ID, ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    org_role: Mapped[str] = mapped_column(ROLE_REF)  # Member or a custom role, never Admin (R11)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """Only a hash of the key is stored (R12); ``masked`` is what reads show."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    service_account_id: Mapped[str] = mapped_column(
        ID, ForeignKey("service_accounts.id", ondelete="CASCADE"), index=True
    )
    org_id: Mapped[str] = mapped_column(ID, index=True)
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    masked: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UserApiKey(Base):
    """A user's personal API key (R29): only its hash is stored; ``masked`` is what reads show.

    It belongs to the user, not to an organization: leaving one leaves the key in place, and
    it acts as the user wherever the user is a member. Deleting it revokes it."""

    __tablename__ = "user_api_keys"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ID, index=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    masked: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Invitation(Base):
    __tablename__ = "invitations"
    __table_args__ = (Index("ix_invitations_org_email_status", "org_id", "email", "status"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org_id: Mapped[str] = mapped_column(ID, ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    org_role: Mapped[str] = mapped_column(ROLE_REF)
    status: Mapped[str] = mapped_column(String(16))  # pending accepted rejected revoked expired
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    invited_by: Mapped[str] = mapped_column(String(160))
    accepted_by: Mapped[str | None] = mapped_column(ID)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Outbox(Base):
    """Durable mail queue (R9): written in the invitation's transaction, sent with retries."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


class AuditEvent(Base):
    """``orgauthz.<resource>.<action>``, written in the same transaction as the change."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_org_id", "org_id", "id"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(ID)
    workspace_id: Mapped[str | None] = mapped_column(ID)
    actor: Mapped[str] = mapped_column(String(160))
    event: Mapped[str] = mapped_column(String(96), index=True)
    target: Mapped[str] = mapped_column(String(300))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
