"""One Casbin enforcer per organization, with the rule pre-filter that makes it fast.

Plain ``Enforcer.enforce`` runs the matcher over every ``p`` line. The matcher's first
conjunct is ``g2(p.obj, r.obj)``: a line can only match when its scope includes the
requested one. :class:`OrgEnforcer` therefore hands Casbin, for each request, only the
lines whose scope includes ``r.obj`` (one per role: the others differ only in ``p.obj``,
which the rest of the matcher does not read). Decisions are identical to a plain
``casbin.Enforcer`` holding the same model and lines; the property tests prove it.

Not thread-safe: Casbin's ``enforce`` mutates internal state. Call from one thread.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import casbin
from casbin import persist
from casbin.model import Model

from casbin.util.builtin_operators import generate_g_function

from orgauthz.domain.lines import Line
from orgauthz.domain.policy import PolicySet
from orgauthz.engine.matcher import Matcher, compile_matcher


class LinesAdapter(persist.Adapter):  # type: ignore[misc]  # casbin ships no type hints
    """Feeds in-memory lines to Casbin (read-only: the store is the source of truth)."""

    def __init__(self, lines: Iterable[Line]) -> None:
        self._lines = lines

    def load_policy(self, model: Model) -> None:
        for ptype, *values in self._lines:
            model.model[ptype[0]][ptype].policy.append(values)


def new_enforcer(model_text: str, lines: Iterable[Line]) -> casbin.Enforcer:
    """A plain ``casbin.Enforcer`` with ``model_text`` and ``lines`` loaded."""
    model = Model()
    model.load_model_from_text(model_text)
    return casbin.Enforcer(model, LinesAdapter(lines))


class OrgEnforcer:
    """Decides for one organization: its lines, the built-in roles, and its custom roles."""

    def __init__(self, policy: PolicySet, org_domain: str, p_lines: list[Line],
                 include_lines: list[Line], access_lines: list[Line]) -> None:
        self.org_domain = org_domain
        self._policy = policy
        self._enforcer = new_enforcer(policy.model_text, [*p_lines, *include_lines, *access_lines])
        self._p = self._enforcer.model.model["p"]["p"]
        self._rm = self._enforcer.get_role_manager()
        self._by_obj = self._index(p_lines)
        self._matcher = self._compile()
        self.subjects: Counter[str] = Counter(line[1] for line in access_lines if line[0] == "g")

    def _compile(self) -> Matcher | None:
        """The compiled matcher, or None to use Casbin's interpreter (effects other than allow-any)."""
        model = self._enforcer.model.model
        if model["e"]["e"].value.replace(" ", "") not in {"some(where(p.eft==allow))", "some(where(p_eft==allow))"}:
            return None
        functions = dict(self._enforcer.fm.get_functions())
        for key, assertion in model["g"].items():
            functions[key] = generate_g_function(assertion.rm)
        return compile_matcher(model["m"]["m"].value, model["r"]["r"].tokens, self._p.tokens, functions)

    def _index(self, p_lines: list[Line]) -> dict[str, list[list[str]]]:
        """For each scope, one ``p`` line per role whose scope includes it."""
        by_obj: dict[str, dict[str, list[str]]] = {}
        for _, role, scope in p_lines:
            for granted in self._policy.includes_closure.get(scope, frozenset((scope,))):
                by_obj.setdefault(granted, {}).setdefault(role, [role, scope])
        return {obj: list(lines.values()) for obj, lines in by_obj.items()}

    def knows(self, subject: str) -> bool:
        """Whether any line names the subject; an unknown subject can hold nothing."""
        return subject in self.subjects

    def enforce(self, subject: str, domain: str, scope: str) -> bool:
        # Unknown subjects would make Casbin's role manager create entries for them:
        # they can hold nothing, so they are denied without touching it.
        if subject not in self.subjects:
            return False
        lines = self._by_obj.get(scope, ())
        if self._matcher is not None:
            match = self._matcher
            return any(match(subject, self.org_domain, domain, scope, *line) for line in lines)
        saved = self._p.policy
        self._p.policy = lines
        try:
            return bool(self._enforcer.enforce(subject, self.org_domain, domain, scope))
        finally:
            self._p.policy = saved

    def roles_of(self, subject: str, domain: str) -> list[str]:
        """Roles the subject holds in ``domain`` (an ``org:`` or ``ws:`` domain)."""
        if subject not in self.subjects:
            return []
        return list(self._rm.get_roles(subject, domain))

    def default_role(self, ws_dom: str) -> str | None:
        rm = self._enforcer.get_named_role_manager("g3")
        roles = rm.get_roles(ws_dom) if rm is not None else []
        return roles[0] if roles else None

    def role_scopes(self, role: str) -> set[str]:
        return {line[1] for line in self._p.policy if line[0] == role}

    def add(self, lines: Iterable[Line]) -> None:
        """Applies ``g``/``g3`` lines straight to the role managers (no list scans)."""
        for ptype, *values in lines:
            rm = self._enforcer.get_named_role_manager(ptype)
            rm.add_link(*values)
            if ptype == "g":
                self.subjects[values[0]] += 1

    def remove(self, lines: Iterable[Line]) -> None:
        for ptype, *values in lines:
            rm = self._enforcer.get_named_role_manager(ptype)
            try:
                rm.delete_link(*values)
            except RuntimeError:
                continue  # already absent: removal is idempotent
            if ptype == "g":
                self.subjects[values[0]] -= 1
                if self.subjects[values[0]] <= 0:
                    del self.subjects[values[0]]
