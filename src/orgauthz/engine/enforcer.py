"""Decides for one organization: Casbin's model, evaluated by the project's own code.

Casbin's part is the model (``policies/model.conf``: request, policy and role definitions,
effect, matcher) and the lines it is fed (``p``, ``g`` to ``g5``). The project's part
is how they are evaluated: :class:`OrgEnforcer` holds the role definitions' links in
:class:`RoleLinks` (what Casbin's role managers would answer), calls the matcher compiled
by :mod:`orgauthz.engine.matcher`, and only over the ``p`` lines that can match. The
matcher's first conjunct is ``g2(p.obj, r.obj)``: a line can only match when its scope
includes the requested one, so for each scope the lines whose scope includes it are
indexed in advance (one per role: the others differ only in ``p.obj``, which the rest of
the matcher does not read). Decisions are identical to a plain ``casbin.Enforcer``
(:func:`new_enforcer`) holding the same model and lines; tests/decisions/test_equivalence.py
proves it.

A model the compiler refuses is refused at start-up (:func:`check_model`, which
:func:`orgauthz.domain.policy.load_policy` runs): there is no second evaluator.

Not thread-safe: call from one thread (the event loop's).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Final, cast

import casbin
from casbin import persist
from casbin.model import FunctionMap, Model

from orgauthz.domain.lines import Line
from orgauthz.domain.policy import PolicySet
from orgauthz.engine.matcher import Matcher, compile_matcher
from orgauthz.errors import PolicyError

# What the engine calls the matcher with: (sub, org, dom, obj, res) of the request, then
# (sub, obj) of one p line; and the one effect it implements, allow when any line matches.
REQUEST: Final = ["r_sub", "r_org", "r_dom", "r_obj", "r_res"]
POLICY: Final = ["p_sub", "p_obj"]
ALLOW_ANY: Final = frozenset({"some(where(p.eft==allow))", "some(where(p_eft==allow))"})


class LinesAdapter(persist.Adapter):  # type: ignore[misc]  # casbin ships no type hints
    """Feeds in-memory lines to Casbin (read-only: the store is the source of truth)."""

    def __init__(self, lines: Iterable[Line]) -> None:
        self._lines = lines

    def load_policy(self, model: Model) -> None:
        for ptype, *values in self._lines:
            model.model[ptype[0]][ptype].policy.append(values)


def new_enforcer(model_text: str, lines: Iterable[Line]) -> casbin.Enforcer:
    """A plain ``casbin.Enforcer`` with ``model_text`` and ``lines`` loaded: the reference the
    engine is held to (the equivalence tests, ``policy lint``'s probe, ``policy diff``, the
    benchmark), never on the decision path."""
    model = Model()
    model.load_model_from_text(model_text)
    return casbin.Enforcer(model, LinesAdapter(lines))


class RoleLinks:
    """One role definition's links (``g`` to ``g5``), indexed for Casbin's ``g`` semantics.

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


def compile_model(policy: PolicySet, model: Model, g_functions: Mapping[str, Callable[..., bool]]) -> Matcher:
    """The model's matcher compiled over ``g_functions`` (one per role definition) and Casbin's
    function map.

    Raises :class:`PolicyError` at the line of ``policy``'s model.conf at fault when the
    request or policy definition is not the one the engine calls the matcher with, the effect
    is not ``some(where (p.eft == allow))``, or :func:`compile_matcher` refuses the matcher.
    """
    rows = policy.model_text.splitlines()
    m = model.model

    def refuse(key: str, message: str) -> PolicyError:
        line = next((i for i, row in enumerate(rows, 1) if re.match(rf"\s*{key}\s*=", row)), 0)
        return PolicyError(message, file=str(policy.directory / "model.conf"), line=line)

    if m["r"]["r"].tokens != REQUEST:
        raise refuse("r", "the request must be r = sub, org, dom, obj, res (what the engine asks the matcher)")
    if m["p"]["p"].tokens != POLICY:
        raise refuse("p", "the policy must be p = sub, obj (what the engine hands the matcher)")
    if m["e"]["e"].value.replace(" ", "") not in ALLOW_ANY:
        raise refuse(
            "e",
            "the effect must be some(where (p.eft == allow)): the engine allows when one p line "
            "matches and evaluates no other effect",
        )
    functions = {**FunctionMap.load_function_map().get_functions(), **g_functions}
    try:
        return compile_matcher(m["m"]["m"].value, REQUEST, POLICY, functions)
    except PolicyError as exc:
        raise refuse("m", str(exc)) from None


def load_model(policy: PolicySet) -> Model:
    """Casbin's ``Model`` of ``policy.model_text``; :class:`PolicyError` when Casbin cannot load it
    or a section the engine reads is missing."""
    model = Model()
    try:
        model.load_model_from_text(policy.model_text)
    except Exception as exc:  # Casbin raises bare RuntimeError and friends
        raise PolicyError(f"Casbin cannot load the model: {exc}", file=str(policy.directory / "model.conf")) from None
    for sec, key, title in (
        ("r", "r", "request_definition"),
        ("p", "p", "policy_definition"),
        ("e", "e", "policy_effect"),
        ("m", "m", "matchers"),
    ):
        if key not in model.model.get(sec, {}):
            raise PolicyError(f"section [{title}] is missing", file=str(policy.directory / "model.conf"))
    return model


def check_model(policy: PolicySet) -> None:
    """Raises :class:`PolicyError` (file and line) unless :class:`OrgEnforcer` can evaluate the
    model: Casbin loads it and :func:`compile_model` accepts it. Run at start-up."""
    model = load_model(policy)
    compile_model(policy, model, dict.fromkeys(model.model.get("g", {}), _never))


def _never(*_: str) -> bool:
    return False


_RES: Final = object()  # where ``r.res`` went in a recorded call's arguments
_Step = tuple[
    object, ...
]  # what the matcher did with ``r.res``: ("call", name, args), ("==", x), ("!=", x), ("truth",)


class _Recorded(str):
    """``r.res`` while :meth:`OrgEnforcer.enforce_each` records what the matcher does with it.

    The matcher's grammar (:data:`orgauthz.engine.matcher.ACCEPTED`) lets it do three things
    with a request value: compare it (``==``, ``!=``), take its truth (``&&``, ``||``, ``!``),
    or pass it to a function. The first two are these methods; the functions are wrapped by
    :func:`_recording`, which hands them the plain string. Each is appended to ``trace`` with
    its result."""

    trace: list[tuple[_Step, object]]
    plain: str

    def __eq__(self, other: object) -> bool:
        result = self.plain == _plain(other)
        self.trace.append((("==", _RES if type(other) is _Recorded else other), result))
        return result

    def __ne__(self, other: object) -> bool:
        result = self.plain != _plain(other)
        self.trace.append((("!=", _RES if type(other) is _Recorded else other), result))
        return result

    def __bool__(self) -> bool:
        result = bool(self.plain)
        self.trace.append((("truth",), result))
        return result

    __hash__ = str.__hash__


def _plain(value: object) -> object:
    return value.plain if type(value) is _Recorded else value


def _recording(name: str, fn: Callable[..., object]) -> Callable[..., object]:
    """``fn``, recording each call that is given ``r.res`` (a :class:`_Recorded`)."""

    def call(*args: object) -> object:
        for a in args:
            if type(a) is _Recorded:
                result = fn(*[_plain(x) for x in args])
                a.trace.append((("call", name, tuple(_RES if type(x) is _Recorded else x for x in args)), result))
                return result
        return fn(*args)

    return call


class OrgEnforcer:
    """Decides for one organization: its lines, the built-in roles, and its custom roles.

    Evaluates the model's compiled matcher over the pre-filtered ``p`` lines, with ``g``
    functions over :class:`RoleLinks`. Raises :class:`PolicyError` when the model cannot be
    compiled (:func:`check_model` refuses such a model at start-up first).
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
        model = load_model(policy)
        self._p_lines = [list(line[1:]) for line in p_lines]
        self._links: dict[str, RoleLinks] = {key: RoleLinks() for key in model.model.get("g", {})}
        self.subjects: Counter[str] = Counter()
        # (workspace, kind) -> object id -> g4 lines leaving its nodes: the objects an ACL
        # governs (R26, R27), for PlanObjects.
        self._governed: dict[tuple[str, str], Counter[str]] = {}
        self._by_obj = self._index(p_lines)
        self._functions = {key: links.g_function() for key, links in self._links.items()}
        self._matcher = compile_model(policy, model, self._functions)
        self._matcher_text = sys.intern(model.model["m"]["m"].value)  # for the recording matcher
        self._recorder: Matcher | None = None  # the matcher recording r.res (enforce_each), when first needed
        self._replayable: dict[str, Callable[..., object]] = {}  # and the functions it calls, by name
        self._add_links(include_lines)
        self._add_links(access_lines)

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
            elif ptype == "g4" and "/" in values[0]:
                self._count_object(values[0], 1)

    def _count_object(self, node: str, step: int) -> None:
        """``node`` is ``<workspace>/<kind>:<id>#<level>`` (lines.object_node)."""
        ws, _, rest = node.partition("/")
        kind, _, ident = rest.rpartition("#")[0].partition(":")
        counts = self._governed.get((ws, kind))
        if counts is None:  # not setdefault: it would build a Counter for every line
            counts = self._governed[(ws, kind)] = Counter()
        counts[ident] += step
        if counts[ident] <= 0:
            del counts[ident]

    def governed(self, workspace: str, kind: str) -> list[str]:
        """Ids of the workspace's objects of ``kind`` that an ACL governs (R26, R27)."""
        return list(self._governed.get((workspace, kind), ()))

    def knows(self, subject: str) -> bool:
        """Whether any line names the subject; an unknown subject can hold nothing."""
        return subject in self.subjects

    def enforce(self, subject: str, domain: str, scope: str, res: str = "") -> bool:
        """``res``: the object node the scope needs (see :func:`orgauthz.domain.lines.object_need`),
        "" for none."""
        # Unknown subjects hold nothing: denied without evaluating anything.
        if subject not in self.subjects:
            return False
        match, org = self._matcher, self.org_domain
        for line in self._by_obj.get(scope, ()):  # noqa: SIM110  # a loop: no generator object per decision
            if match(subject, org, domain, scope, res, *line):
                return True
        return False

    def enforce_each(self, subject: str, domain: str, scope: str, nodes: list[str]) -> list[bool]:
        """``[enforce(subject, domain, scope, node) for node in nodes]``, for PlanObjects: one
        request that differs only in ``r.res``, for every object an ACL governs in a workspace.

        Every other value of the request, and so every function call and comparison that does
        not involve ``r.res``, is the same for each node, and the matcher and its functions are
        deterministic and read only. So the decision for a node depends only on what the
        matcher did with ``r.res`` (:class:`_Recorded`: which call or comparison, in order) and
        what each of those returned; once a sequence of results has been seen, a node whose
        first steps give the same results takes the same next step, and ends in the same
        decision. The first node down each path is evaluated in full (recording); every other
        one replays only the steps that read its node: about three lookups, where an
        evaluation calls the matcher on each of the scope's ``p`` lines (about 100 µs for a
        denial in the largest organization of ``large``, bench/NOTES.md)."""
        if subject not in self.subjects:
            return [False] * len(nodes)
        tree: dict[tuple[object, ...], tuple[bool, object]] = {}  # results so far -> (decided?, decision or next step)
        out: list[bool] = []
        for node in nodes:
            path: tuple[object, ...] = ()
            step = tree.get(path)
            while step is not None and not step[0]:
                path += (self._replay(cast(_Step, step[1]), node),)
                step = tree.get(path)
            if step is not None:
                out.append(cast(bool, step[1]))
                continue
            res = _Recorded(node)
            res.plain, res.trace = node, []
            allowed = self._enforce_with(self._recording_matcher(), subject, domain, scope, res)
            seen: tuple[object, ...] = ()
            first: set[_Step] = set()
            for taken, result in res.trace:  # the replayed prefix again, then the new steps
                if taken in first:  # a step taken before on this path: the same answer again
                    continue
                first.add(taken)
                tree[seen] = (False, taken)
                seen += (result,)
            tree[seen] = (True, allowed)
            out.append(allowed)
        return out

    def _enforce_with(self, match: Matcher, subject: str, domain: str, scope: str, res: str) -> bool:
        org = self.org_domain
        for line in self._by_obj.get(scope, ()):  # noqa: SIM110  # as enforce
            if match(subject, org, domain, scope, res, *line):
                return True
        return False

    def _recording_matcher(self) -> Matcher:
        if self._recorder is None:
            self._replayable = {**FunctionMap.load_function_map().get_functions(), **self._functions}
            recording = {name: _recording(name, fn) for name, fn in self._replayable.items()}
            self._recorder = compile_matcher(self._matcher_text, REQUEST, POLICY, recording)
        return self._recorder

    def _replay(self, step: _Step, node: str) -> object:
        if step[0] == "call":
            _, name, args = step
            return self._replayable[cast(str, name)](
                *[node if a is _RES else a for a in cast(tuple[object, ...], args)]
            )
        if step[0] == "==":
            return node == (node if step[1] is _RES else step[1])
        if step[0] == "!=":
            return node != (node if step[1] is _RES else step[1])
        return bool(node)

    def links(self, ptype: str) -> RoleLinks:
        """The links of role definition ``ptype`` (``g4``: ACL listings), for explanations and plans."""
        return self._links[ptype]

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
        """Applies ``g`` to ``g5`` lines to the role links (no list scans)."""
        self._add_links(lines)

    def remove(self, lines: Iterable[Line]) -> None:
        for ptype, *values in lines:
            if not self._links[ptype].remove(*values):
                continue  # already absent: removal is idempotent
            if ptype == "g":
                self.subjects[values[0]] -= 1
                if self.subjects[values[0]] <= 0:
                    del self.subjects[values[0]]
            elif ptype == "g4" and "/" in values[0]:
                self._count_object(values[0], -1)
