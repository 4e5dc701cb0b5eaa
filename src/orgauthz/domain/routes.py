"""The route table of Envoy's external authorization: which question an HTTP request asks.

``policies/routes.yaml`` (docs/envoy.md) is a list of routes::

    routes:
      - method: POST
        path: /api/accounts/{org}/workspaces/{ws}/deployments/{id}/create_flow_run
        workspace: "{ws}"
        scope: run_deployments
        object: "deployment:{id}"          # optional (R26)
        description: start a flow run of a deployment

A path template is ``/``-separated segments, each a literal or a variable ``{name}`` standing
for one whole, non-empty segment. ``workspace`` and ``object`` are templates over the path's
variables. A request matches a route when its method is the route's and its path (without
the query string) has the template's segments; routes never overlap (:func:`read_routes`
refuses two routes one request could match), so the order of the file does not matter. A
request no route matches is denied (:data:`UNMATCHED`).

:func:`read_routes` returns the table and every finding (file line, message); the server
refuses to start on a finding, ``orgauthz policy lint`` lists them all. This module is plain
Python over plain values: no gRPC, no Envoy types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml

from orgauthz.domain import bounds
from orgauthz.domain.policy import WORKSPACE, PolicySet
from orgauthz.errors import InvalidArgument, PolicyError

FILE_NAME: Final = "routes.yaml"
UNMATCHED: Final = "deny"  # what a request no route matches gets; documented, not configurable
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_ROUTE_KEYS: Final = {"method", "path", "workspace", "scope", "object", "description"}
_REQUIRED: Final = ("method", "path", "workspace", "scope")
_VARIABLE: Final = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_SEGMENT: Final = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@-]+")  # a literal segment, unescaped
PATH_MAX: Final = 2048


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    segments: tuple[str, ...]  # literals, or "{name}" for a variable
    workspace: str
    scope: str
    obj: str  # "" or a template such as "deployment:{id}"
    line: int

    def bind(self, parts: list[str]) -> dict[str, str] | None:
        """The variables of a path split into ``parts`` when it matches; None otherwise."""
        found: dict[str, str] = {}
        for template, part in zip(self.segments, parts, strict=True):
            if template.startswith("{"):
                found[template[1:-1]] = part
            elif template != part:
                return None
        return found


@dataclass(frozen=True)
class Match:
    """The question a matched request asks."""

    route: Route
    workspace: str
    scope: str
    obj: str


@dataclass(frozen=True)
class RouteTable:
    routes: tuple[Route, ...]

    def match(self, method: str, path: str) -> Match | None:
        """The question for ``method path``; None when no route matches (:data:`UNMATCHED`).

        Raises InvalidArgument("path") for a path that is not a plain absolute path: empty or
        ``.``/``..`` segments, or over :data:`PATH_MAX` characters (a proxy normalizes paths
        first, docs/envoy.md; what it passed unnormalized is never matched against a route),
        and InvalidArgument naming the variable when a value is not a valid id.
        """
        raw = path.split("?", 1)[0].split("#", 1)[0]
        if not raw.startswith("/") or len(path) > PATH_MAX:
            raise InvalidArgument("path", "must be an absolute path")
        parts = raw[1:].split("/")
        if any(p in ("", ".", "..") for p in parts) and raw != "/":
            raise InvalidArgument("path", "has an empty, '.' or '..' segment")
        method = method.upper()
        for route in self.routes:
            if route.method != method or len(route.segments) != len(parts):
                continue
            found = route.bind(parts)
            if found is None:
                continue
            for name, value in found.items():
                bounds.check_id(f"path {{{name}}}", value)
            obj = _fill(route.obj, found)
            return Match(route, _fill(route.workspace, found), route.scope, obj)
        return None


def _fill(template: str, values: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda m: values[m.group(1)], template)


def overlap(a: Route, b: Route) -> bool:
    """Whether one request could match both routes."""
    if a.method != b.method or len(a.segments) != len(b.segments):
        return False
    return all(x == y or x.startswith("{") or y.startswith("{") for x, y in zip(a.segments, b.segments, strict=True))


def load_routes(path: Path, policy: PolicySet) -> RouteTable:
    """The table in ``path``; PolicyError (file and line) at its first finding."""
    table, findings = read_routes(path, policy)
    if findings:
        line, message = findings[0]
        raise PolicyError(message, file=str(path), line=line)
    return table


def read_routes(path: Path, policy: PolicySet) -> tuple[RouteTable, list[tuple[int, str]]]:
    """The table in ``path`` (the routes without findings) and every finding, by line."""
    out: list[tuple[int, str]] = []
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except FileNotFoundError:
        return RouteTable(()), [(0, "file is missing")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return RouteTable(()), [((mark.line + 1) if mark else 1, f"not valid YAML: {getattr(exc, 'problem', exc)}")]
    if root is None:
        return RouteTable(()), []
    if not isinstance(root, yaml.MappingNode):
        return RouteTable(()), [(1, "must be a mapping with a 'routes' list")]
    entries: list[yaml.Node] = []
    for key, value in root.value:
        if key.value != "routes":
            out.append((key.start_mark.line + 1, f"unknown section {key.value!r} (expected routes)"))
        elif isinstance(value, yaml.SequenceNode):
            entries = value.value
        elif not (isinstance(value, yaml.ScalarNode) and value.tag.endswith(":null")):
            out.append((value.start_mark.line + 1, "routes must be a list"))
    routes: list[Route] = []
    for node in entries:
        route = _route(node, policy, out)
        if route is None:
            continue
        for other in routes:
            if overlap(other, route):
                out.append(
                    (
                        route.line,
                        f"{route.method} {route.path} overlaps {other.method} {other.path} (line {other.line}): "
                        "one request would match both",
                    )
                )
                break
        else:
            routes.append(route)
    return RouteTable(tuple(routes)), sorted(out)


def _route(node: yaml.Node, policy: PolicySet, out: list[tuple[int, str]]) -> Route | None:
    line = node.start_mark.line + 1
    before = len(out)
    if not isinstance(node, yaml.MappingNode):
        out.append((line, "a route must be a mapping (method, path, workspace, scope, object)"))
        return None
    raw: dict[str, str] = {}
    lines: dict[str, int] = {}
    for key, value in node.value:
        at = key.start_mark.line + 1
        lines.setdefault(key.value, at)
        if key.value not in _ROUTE_KEYS:
            out.append((at, f"unknown key {key.value!r} (expected {', '.join(sorted(_ROUTE_KEYS))})"))
        elif key.value in raw:
            out.append((at, f"duplicate key {key.value!r}"))
        elif not isinstance(value, yaml.ScalarNode) or not value.value:
            out.append((at, f"{key.value} must be a non-empty string"))
        else:
            raw[key.value] = value.value
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        out.append((line, f"a route needs {', '.join(missing)}"))
        return None
    method, path = raw["method"], raw["path"]
    where = f"{method} {path}"
    if method not in METHODS:
        out.append(
            (lines["method"], f"{where}: unknown method {method!r} (expected one of {', '.join(sorted(METHODS))})")
        )
    segments = tuple(path[1:].split("/")) if path.startswith("/") else ()
    if not segments:
        out.append((lines["path"], f"{where}: a path starts with '/'"))
    names: list[str] = []
    for segment in segments:
        var = _VARIABLE.fullmatch(segment)
        if var:
            if var.group(1) in names:
                out.append((lines["path"], f"{where}: variable {{{var.group(1)}}} appears twice in the path"))
            names.append(var.group(1))
        elif not _SEGMENT.fullmatch(segment):
            out.append((lines["path"], f"{where}: segment {segment!r} is neither a literal nor a whole {{variable}}"))
    for field in ("workspace", "object"):
        template = raw.get(field, "")
        for name in _VARIABLE.findall(template):
            if name not in names:
                out.append((lines[field], f"{where}: {field} uses {{{name}}}, which is not a variable of the path"))
        if "{" in _VARIABLE.sub("", template) or "}" in _VARIABLE.sub("", template):
            out.append((lines[field], f"{where}: {field} {template!r} has a malformed {{variable}}"))
    scope = raw["scope"]
    if not policy.is_scope(WORKSPACE, scope):
        hint = f" (renamed to {policy.renamed[scope]!r})" if scope in policy.renamed else ""
        out.append((lines["scope"], f"{where}: unknown workspace scope {scope!r}{hint}"))
    obj = raw.get("object", "")
    if obj:
        kind, sep, ident = obj.partition(":")
        if not sep or not ident:
            out.append((lines["object"], f"{where}: object must be <kind>:<id or {{variable}}>"))
        elif kind not in bounds.OBJECT_KINDS:
            out.append(
                (lines["object"], f"{where}: unknown object kind {kind!r} (expected {', '.join(bounds.OBJECT_KINDS)})")
            )
    if len(out) > before:
        return None
    return Route(method, path, segments, raw["workspace"], scope, obj, line)
