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

import contextlib
import sys
from collections import Counter
from collections.abc import Callable, Iterable

import casbin
from casbin import persist
from casbin.model import FunctionMap, Model

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


class RoleLinks:
    """One role definition's links (``g``, ``g2``, ``g3``), indexed for Casbin's ``g`` semantics.

    ``has_link(a, b[, domain])`` is what Casbin's default role managers answer: ``a == b``,
    or ``b`` reachable from ``a`` through the domain's links within ``max_hierarchy_level``
    levels (names match by equality: the model sets no matching functions). Building it is
    one dict insert per line, where Casbin's domain manager rebuilds a domain with one
    quadratic ``add_link`` pass on its first request; names are interned so that a subject
    named in thousands of lines is stored once.
    """

    __slots__ = ("_by_domain", "max_hierarchy_level")

    def __init__(self, max_hierarchy_level: int = 10) -> None:
        self._by_domain: dict[str, dict[str, tuple[str, ...]]] = {}
        self.max_hierarchy_level = max_hierarchy_level

    def add(self, name1: str, name2: str, domain: str = "") -> None:
        links = self._by_domain.get(domain)
        if links is None:
            links = self._by_domain[sys.intern(domain)] = {}
        held = links.get(name1)
        if held is None:
            links[sys.intern(name1)] = (sys.intern(name2),)
        elif name2 not in held:
            links[name1] = (*held, sys.intern(name2))

    def remove(self, name1: str, name2: str, domain: str = "") -> bool:
        """False when the link was absent."""
        links = self._by_domain.get(domain)
        if links is None:
            return False
        held = links.get(name1)
        if held is None or name2 not in held:
            return False
        rest = tuple(r for r in held if r != name2)
        if rest:
            links[name1] = rest
        else:
            del links[name1]
        return True

    def roles(self, name: str, domain: str = "") -> tuple[str, ...]:
        """Direct roles of ``name`` in ``domain``, in the order they were linked."""
        links = self._by_domain.get(domain)
        return links.get(name, ()) if links is not None else ()

    def has_link(self, name1: str, name2: str, domain: str = "") -> bool:
        if name1 == name2:
            return True
        links = self._by_domain.get(domain)
        if links is None:
            return False
        held = links.get(name1)
        if held is None:
            return False
        if name2 in held:
            return True
        frontier = set(held)
        for _ in range(self.max_hierarchy_level - 2):
            nxt: set[str] = set()
            for role in frontier:
                nxt.update(links.get(role, ()))
            if not nxt:
                return False
            if name2 in nxt:
                return True
            frontier = nxt
        return False

    def g_function(self) -> Callable[..., bool]:
        """The matcher's ``g``: ``g(a, b)`` or ``g(a, b, domain)``."""
        has_link = self.has_link
        by_domain = self._by_domain

        def g(name1: str, name2: str, domain: str = "") -> bool:
            # Fast path for the common one-hop case; has_link covers the rest.
            links = by_domain.get(domain)
            if links is not None:
                held = links.get(name1)
                if held is not None and name2 in held:
                    return True
            return has_link(name1, name2, domain)

        return g


class OrgEnforcer:
    """Decides for one organization: its lines, the built-in roles, and its custom roles.

    Evaluates the model's compiled matcher over the pre-filtered ``p`` lines, with ``g``
    functions over :class:`RoleLinks`. When the model cannot be compiled (an effect other
    than allow-any, or a matcher the compiler refuses), a plain ``casbin.Enforcer`` with
    the same lines decides instead, and changes go to both.
    """

    def __init__(
        self,
        policy: PolicySet,
        org_domain: str,
        p_lines: list[Line],
        include_lines: list[Line],
        access_lines: list[Line],
    ) -> None:
        self.org_domain = org_domain
        self._policy = policy
        model = Model()
        model.load_model_from_text(policy.model_text)
        self._p_lines = [list(line[1:]) for line in p_lines]
        self._links: dict[str, RoleLinks] = {key: RoleLinks() for key in model.model["g"]}
        self.subjects: Counter[str] = Counter()
        self._enforcer: casbin.Enforcer | None = None
        self._by_obj = self._index(p_lines)
        self._matcher = self._compile(model)
        if self._matcher is None:
            self._enforcer = new_enforcer(policy.model_text, [*p_lines, *include_lines, *access_lines])
            self._p = self._enforcer.model.model["p"]["p"]
        self._add_links(include_lines)
        self._add_links(access_lines)

    def _compile(self, model: Model) -> Matcher | None:
        """The compiled matcher, or None to use Casbin's interpreter (effects other than allow-any)."""
        m = model.model
        if m["e"]["e"].value.replace(" ", "") not in {"some(where(p.eft==allow))", "some(where(p_eft==allow))"}:
            return None
        functions = dict(FunctionMap.load_function_map().get_functions())
        for key, links in self._links.items():
            functions[key] = links.g_function()
        return compile_matcher(m["m"]["m"].value, m["r"]["r"].tokens, m["p"]["p"].tokens, functions)

    def _index(self, p_lines: list[Line]) -> dict[str, list[list[str]]]:
        """For each scope, one ``p`` line per role whose scope includes it."""
        by_obj: dict[str, dict[str, list[str]]] = {}
        for _, role, scope in p_lines:
            for granted in self._policy.includes_closure.get(scope, frozenset((scope,))):
                by_obj.setdefault(granted, {}).setdefault(role, [role, scope])
        return {obj: list(lines.values()) for obj, lines in by_obj.items()}

    def _add_links(self, lines: Iterable[Line]) -> None:
        links, subjects = self._links, self.subjects
        for ptype, *values in lines:
            links[ptype].add(*values)
            if ptype == "g":
                subjects[values[0]] += 1

    def knows(self, subject: str) -> bool:
        """Whether any line names the subject; an unknown subject can hold nothing."""
        return subject in self.subjects

    def enforce(self, subject: str, domain: str, scope: str) -> bool:
        # Unknown subjects hold nothing: denied without evaluating anything.
        if subject not in self.subjects:
            return False
        lines = self._by_obj.get(scope, ())
        match = self._matcher
        if match is not None:
            org = self.org_domain
            for line in lines:  # noqa: SIM110  # a loop: no generator object per decision
                if match(subject, org, domain, scope, *line):
                    return True
            return False
        assert self._enforcer is not None
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
        return list(self._links["g"].roles(subject, domain))

    def default_role(self, ws_dom: str) -> str | None:
        links = self._links.get("g3")
        roles = links.roles(ws_dom) if links is not None else ()
        return roles[0] if roles else None

    def role_scopes(self, role: str) -> set[str]:
        return {line[1] for line in self._p_lines if line[0] == role}

    def add(self, lines: Iterable[Line]) -> None:
        """Applies ``g``/``g2``/``g3`` lines to the role links (no list scans)."""
        lines = list(lines)
        self._add_links(lines)
        if self._enforcer is not None:
            for ptype, *values in lines:
                self._enforcer.get_named_role_manager(ptype).add_link(*values)

    def remove(self, lines: Iterable[Line]) -> None:
        for ptype, *values in lines:
            if not self._links[ptype].remove(*values):
                continue  # already absent: removal is idempotent
            if self._enforcer is not None:
                with contextlib.suppress(RuntimeError):
                    self._enforcer.get_named_role_manager(ptype).delete_link(*values)
            if ptype == "g":
                self.subjects[values[0]] -= 1
                if self.subjects[values[0]] <= 0:
                    del self.subjects[values[0]]
