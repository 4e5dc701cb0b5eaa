"""What a write did, in the words replicas and the audit log use: no SQL, no grpc.

A :class:`ChangeSet` is the part of a committed write that replicas apply to their engine
(Casbin lines added and removed, workspace ownership, a reload for custom roles); an
:class:`Audit` is one ``orgauthz.<resource>.<action>`` event. Both are produced by the pure
decisions of the services and the importer, and stored by the store's commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orgauthz.domain.lines import Line


@dataclass
class ChangeSet:
    """What a write did, in the terms replicas apply: lines and workspace ownership."""

    org_id: str
    kind: str
    add: list[Line] = field(default_factory=list)
    remove: list[Line] = field(default_factory=list)
    workspaces_added: list[str] = field(default_factory=list)
    workspaces_removed: list[str] = field(default_factory=list)
    reload: bool = False  # custom roles changed: replicas rebuild the organization
    # Subjects (``user:<id>``, ``service_account:<id>``) whose API keys this write revoked,
    # rotated or deleted: replicas drop what they remember of those keys (R14).
    keys: list[str] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "add": [list(x) for x in self.add],
            "remove": [list(x) for x in self.remove],
            "ws_add": self.workspaces_added,
            "ws_remove": self.workspaces_removed,
            "reload": self.reload,
        }
        if self.keys:
            out["keys"] = self.keys
        return out

    @classmethod
    def from_payload(cls, org_id: str, kind: str, p: dict[str, Any]) -> ChangeSet:
        return cls(
            org_id=org_id,
            kind=kind,
            add=[tuple(x) for x in p.get("add", [])],
            remove=[tuple(x) for x in p.get("remove", [])],
            workspaces_added=list(p.get("ws_add", [])),
            workspaces_removed=list(p.get("ws_remove", [])),
            reload=bool(p.get("reload", False)),
            keys=list(p.get("keys", [])),
        )


@dataclass(frozen=True)
class Audit:
    """One audit event of a write (``orgauthz.<resource>.<action>``). Never holds secrets.
    The store adds the write's revision and time; ``org_id`` empty means the write's own."""

    actor: str
    event: str
    target: str
    workspace: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    org_id: str = ""
