"""What the management services may ask the decision engine: reads without side effects.

:class:`~orgauthz.engine.engine.Engine` implements it. The services authorize management
calls through the same engine as Check (R2, R8, R16) and look up which organization a
workspace belongs to without a database read; they never change the engine (the change
feed applies every write) nor reach into its state.
"""

from __future__ import annotations

from typing import Protocol

from orgauthz.engine.engine import Target


class EngineView(Protocol):
    def resolve(self, workspace: str = "", organization: str = "") -> Target | None:
        """The target's organization and domain; None when it names nothing."""

    def org_of(self, workspace: str) -> str | None:
        """The organization owning ``workspace``, as of the applied revision (None: unknown)."""

    def revision_of(self, org_id: str) -> int | None:
        """The organization's revision as of the applied revision (None: no such organization)."""

    async def ensure_loaded(self, org_id: str) -> bool:
        """Loads the organization if needed; False when it does not exist."""

    def direct_roles(self, org_id: str, subject: str, domain: str) -> tuple[str, ...] | None:
        """The roles ``subject`` holds directly in ``domain`` of a loaded organization (None:
        not loaded). Does not count as a use of the organization (its eviction order stays)."""

    def scopes(self, subject: str, target: Target) -> list[str]:
        """Every scope of the target's level ``subject`` holds there (after :meth:`ensure_loaded`)."""

    def decide(self, subject: str, target: Target, scope: str, res: str = "") -> bool:
        """Whether ``subject`` holds ``scope`` at the target (on the object node ``res``, R26)
        (after :meth:`ensure_loaded`)."""

    def keeps_objects(self, subject: str, target: Target) -> bool:
        """Whether ``subject`` keeps full access to the workspace's objects whatever their ACLs
        say: an organization Owner or Admin, or a holder of the workspace Owner role (R2a, R26)."""
