"""``orgauthz policy test``: policy tests as data, run on the bare engine and through gRPC.

A test file (``policies/tests/*.yaml``) holds an organization fixture in the
``orgauthz import`` format and cases::

    organization: {id: acme, handle: acme, name: Acme, members: [...], workspaces: [...]}
    cases:
      - name: a member sees what the default role lets everyone see
        rule: R17
        subject: user:bob
        workspace: acme-prod          # or `organization: acme` for organization permissions
        object: deployment:nightly    # optional, with a workspace: decided on this object (R26)
        allow: [see_flows]            # each must be allowed
        deny: [manage_flows]          # each must be denied
        scopes: [see_flows, ...]      # ListScopes must return exactly these ("*": the whole catalog)
        because: [default workspace role Viewer]   # each text appears in every check's reasons
      - name: an HTTP request, through the route table (policies/routes.yaml, docs/envoy.md)
        subject: user:bob
        request: POST /api/accounts/acme/workspaces/acme-prod/deployments/nightly/create_flow_run
        expect: deny                  # allow or deny

A ``request`` case is matched against the directory's ``routes.yaml`` when the file is
read: a matched route makes it an ``allow`` or ``deny`` of the route's scope in its workspace
(on its object), asked on both paths like any other; an unmatched one expects ``deny`` (the
route table's default). The ``grpc`` path also sends it to Envoy's
``envoy.service.auth.v3.Authorization/Check`` on the same server (the subject in a proxy
header, from a caller presenting the shared secret), which must answer OK or refuse it too.

The fixture's workspaces may carry ``acls`` and ``deployment_pools`` (R26, R27), as
``orgauthz import`` reads them; a case with ``object`` asks every question about that object
(``Check``/``BatchCheck`` ``object``, ``ListScopes`` ``object``), so the object's ACL, or its
work pool's, decides too.

Each file gets its own temporary SQLite store. Every case runs on two paths, so a
transport or cache bug cannot hide behind a correct engine:

* ``engine``: :class:`orgauthz.engine.engine.Engine` over the store (decide, scopes, explain),
  with the object node :func:`orgauthz.domain.lines.object_need` computes;
* ``grpc``: an in-process :class:`orgauthz.api.server.App` on 127.0.0.1:0, asked with
  ``Check`` twice (the second answer comes from the decision cache), ``Check(explain)``,
  one ``BatchCheck`` of the whole file, and ``ListScopes``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import yaml

from orgauthz.domain import bounds
from orgauthz.domain import lines as L
from orgauthz.domain.policy import ORGANIZATION, WORKSPACE, PolicySet, load_policy
from orgauthz.domain.routes import FILE_NAME, RouteTable, load_routes
from orgauthz.engine.engine import NO_ACCESS
from orgauthz.errors import OrgAuthzError
from orgauthz.tools.policy_lint import display_path

PATHS: Final = ("engine", "grpc")
_SUBJECT_HEADER: Final = "x-policy-test-subject"  # the proxy header request cases send the subject in
_CASE_KEYS: Final = {
    "name",
    "rule",
    "note",
    "subject",
    "workspace",
    "organization",
    "object",
    "allow",
    "deny",
    "scopes",
    "because",
    "request",
    "expect",
}
_FILE_KEYS: Final = {"name", "description", "organization", "organizations", "cases"}


class TestFileError(Exception):
    """A test file that cannot be run as written; the message names the file and the case."""


@dataclass(frozen=True)
class Case:
    file: str
    name: str
    subject: str
    workspace: str
    organization: str
    allow: tuple[str, ...]
    deny: tuple[str, ...]
    scopes: tuple[str, ...] | None  # None: no ListScopes expectation
    because: tuple[str, ...]
    obj: str = ""  # R26: deployment:<id>, work_pool:<id> or block:<id>; "" for none
    request: tuple[str, str] | None = None  # (method, path) of an HTTP request case
    expect: bool = False  # a request case: allowed or not

    @property
    def level(self) -> str:
        return WORKSPACE if self.workspace else ORGANIZATION

    @property
    def where(self) -> str:
        if self.request is not None and not self.workspace:
            return " ".join(self.request)
        if not self.workspace:
            return f"organization {self.organization}"
        return f"workspace {self.workspace} on {self.obj}" if self.obj else f"workspace {self.workspace}"

    def checks(self) -> Iterator[tuple[str, bool]]:
        yield from ((s, True) for s in self.allow)
        yield from ((s, False) for s in self.deny)


@dataclass
class TestFile:
    path: Path
    document: dict[str, Any]  # for `orgauthz import`
    cases: list[Case]


@dataclass
class Report:
    files: int = 0
    cases: int = 0
    checks: int = 0
    paths: tuple[str, ...] = PATHS
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    passed_cases: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.files == 0 and not self.errors:
            return 2
        return 1 if self.failures or self.errors else 0

    def lines(self, *, verbose: bool = False) -> list[str]:
        out = [f"ok {c}" for c in self.passed_cases] if verbose else []
        out += [f"ERROR {e}" for e in self.errors]
        out += [f"FAIL {f}" for f in self.failures]
        if self.files == 0 and not self.errors:
            return [*out, "no policy test files found"]
        verdict = f"{len(self.failures)} failure(s)" if self.failures else "all passed"
        if self.errors:
            verdict += f", {len(self.errors)} file(s) could not run"
        out.append(
            f"policy tests: {self.files} file(s), {self.cases} case(s), {self.checks} check(s) "
            f"on {len(self.paths)} path(s) ({', '.join(self.paths)}): {verdict}"
        )
        return out


# -- reading ----------------------------------------------------------------------------


def read_test_file(path: Path, policy: PolicySet) -> TestFile:
    """Parses and checks one test file; raises :class:`TestFileError` naming file and case.
    Request cases are matched against ``routes.yaml`` beside the ``tests/`` directory."""
    shown = display_path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TestFileError(f"{shown}: cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise TestFileError(f"{shown}: must be a YAML mapping with `organization` and `cases`")
    unknown = set(data) - _FILE_KEYS
    if unknown:
        raise TestFileError(f"{shown}: unknown key(s) {sorted(unknown)}; expected {sorted(_FILE_KEYS)}")
    orgs = data.get("organizations") or ([data["organization"]] if data.get("organization") else [])
    if not orgs:
        raise TestFileError(f"{shown}: needs an `organization` (the `orgauthz import` format)")
    raw_cases = data.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        raise TestFileError(f"{shown}: needs a non-empty list of `cases`")
    cases: list[Case] = []
    names: set[str] = set()
    table = (
        _route_table(path.parent.parent, shown)
        if any(isinstance(c, dict) and "request" in c for c in raw_cases)
        else None
    )
    for i, raw in enumerate(raw_cases):
        cases.append(
            _request_case(shown, i, raw, policy, table)
            if table is not None and "request" in raw
            else _case(shown, i, raw, policy)
        )
        if cases[-1].name in names:
            raise TestFileError(f"{shown}: case {cases[-1].name!r}: another case has the same name")
        names.add(cases[-1].name)
    return TestFile(path=path, document={"organizations": orgs}, cases=cases)


def _case(shown: str, index: int, raw: Any, policy: PolicySet) -> Case:
    label = f"{shown}: case #{index + 1}"
    if not isinstance(raw, dict):
        raise TestFileError(f"{label}: must be a mapping")
    name = str(raw.get("name") or f"#{index + 1}")
    label = f"{shown}: case {name!r}"
    unknown = set(raw) - _CASE_KEYS
    if unknown:
        raise TestFileError(f"{label}: unknown key(s) {sorted(unknown)}; expected {sorted(_CASE_KEYS)}")
    subject, workspace, organization = (str(raw.get(k) or "") for k in ("subject", "workspace", "organization"))
    if not subject.startswith(("user:", "service_account:")):
        raise TestFileError(f"{label}: subject must be user:<id> or service_account:<id>")
    if bool(workspace) == bool(organization):
        raise TestFileError(f"{label}: give a workspace or an organization")
    level = WORKSPACE if workspace else ORGANIZATION
    obj = _object(label, raw, policy, level)

    def names(key: str) -> tuple[str, ...]:
        value = raw.get(key) or []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise TestFileError(f"{label}: {key} must be a list")
        # A renamed id is accepted for one release (R21), as the id it became.
        out = tuple(str(v) if key == "because" else policy.current_id(str(v)) for v in value)
        for s in out:
            if key != "because" and s != "*" and not policy.is_scope(level, s):
                kind = "workspace scope" if level == WORKSPACE else "organization permission"
                raise TestFileError(f"{label}: {key}: unknown {kind} {s!r}")
        return out

    allow, deny, because = names("allow"), names("deny"), names("because")
    scopes: tuple[str, ...] | None = None
    if "scopes" in raw:
        scopes = names("scopes")
        if scopes == ("*",):
            table = policy.workspace_scopes if level == WORKSPACE else policy.organization_permissions
            scopes = tuple(table)
        scopes = tuple(sorted(set(scopes)))
    if "*" in allow or "*" in deny:
        raise TestFileError(f"{label}: allow and deny name scopes one by one ('*' is for `scopes`)")
    if not (allow or deny or scopes is not None):
        raise TestFileError(f"{label}: expects nothing (give allow, deny or scopes)")
    both = set(allow) & set(deny)
    if both:
        raise TestFileError(f"{label}: {sorted(both)} both allowed and denied")
    return Case(
        file=shown,
        name=name,
        subject=subject,
        workspace=workspace,
        organization=organization,
        allow=allow,
        deny=deny,
        scopes=scopes,
        because=because,
        obj=obj,
    )


def _route_table(directory: Path, shown: str) -> RouteTable:
    try:
        return load_routes(directory / FILE_NAME, load_policy(directory))
    except OrgAuthzError as exc:
        raise TestFileError(f"{shown}: request cases need a sound {FILE_NAME}: {exc}") from None


def _request_case(shown: str, index: int, raw: Any, policy: PolicySet, table: RouteTable) -> Case:
    """A case naming an HTTP request: its route's question, or (unmatched) an expected deny."""
    name = str(raw.get("name") or f"#{index + 1}")
    label = f"{shown}: case {name!r}"
    unknown = set(raw) - {"name", "rule", "note", "subject", "request", "expect"}
    if unknown:
        raise TestFileError(
            f"{label}: a request case has name, rule, note, subject, request and expect; not {sorted(unknown)}"
        )
    subject = str(raw.get("subject") or "")
    if not subject.startswith(("user:", "service_account:")):
        raise TestFileError(f"{label}: subject must be user:<id> or service_account:<id>")
    method, _, target = str(raw.get("request") or "").partition(" ")
    if not method or not target:
        raise TestFileError(f"{label}: request must be '<METHOD> <path>'")
    if raw.get("expect") not in ("allow", "deny"):
        raise TestFileError(f"{label}: expect must be allow or deny")
    expect = raw["expect"] == "allow"
    try:
        match = table.match(method, target)
    except OrgAuthzError as exc:
        raise TestFileError(f"{label}: {exc}") from None
    workspace, scope, obj = (match.workspace, match.scope, match.obj) if match else ("", "", "")
    return Case(
        file=shown,
        name=name,
        subject=subject,
        workspace=workspace,
        organization="",
        allow=(scope,) if match and expect else (),
        deny=(scope,) if match and not expect else (),
        scopes=None,
        because=(),
        obj=obj,
        request=(method, target),
        expect=expect,
    )


def _object(label: str, raw: dict[str, Any], policy: PolicySet, level: str) -> str:
    """The case's ``object`` ("" when none): ``<kind>:<id>`` of a kind ``object_acls`` lists,
    inside a workspace (R26)."""
    if "object" not in raw:
        return ""
    value = raw["object"]
    kinds = ", ".join(policy.object_kinds)
    if not isinstance(value, str) or not value:
        raise TestFileError(f"{label}: object must be <kind>:<id> with a kind of {kinds}")
    kind, sep, ident = value.partition(":")
    if not sep or kind not in policy.object_kinds or kind not in bounds.OBJECT_KINDS:
        raise TestFileError(f"{label}: object {value!r}: unknown kind {kind!r} (kinds: {kinds})")
    try:
        bounds.check_id(f"object {value!r}: id", ident)
    except OrgAuthzError as exc:
        raise TestFileError(f"{label}: {exc}") from None
    if level != WORKSPACE:
        raise TestFileError(f"{label}: object {value!r} is named inside a workspace, not an organization")
    return value


# -- the two paths -------------------------------------------------------------------------


class DecisionPath(Protocol):
    """One way of asking: the bare engine, or the gRPC server."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def check(self, case: Case, scope: str) -> tuple[bool, list[str]]:
        """The decision and its reasons."""
        ...

    async def scopes(self, case: Case) -> list[str]: ...

    async def batch(self, items: list[tuple[Case, str]]) -> list[bool] | None:
        """All decisions in one request, in order; None when the path has no batch form."""
        ...

    async def http(self, case: Case) -> bool | None:
        """A request case's verdict through Envoy's Check; None when the path has none."""
        ...


class EnginePath:
    """The :class:`Engine` alone: no cache, no transport."""

    name = "engine"

    def __init__(self, policy: PolicySet, database_url: str) -> None:
        from orgauthz.engine.engine import Engine
        from orgauthz.store.db import open_store

        self.db = open_store(database_url)
        self.engine = Engine(policy, self.db)

    async def start(self) -> None:
        await self.engine.start()

    async def stop(self) -> None:
        self.db.dispose()

    async def _target(self, case: Case) -> Any:
        target = self.engine.resolve(workspace=case.workspace, organization=case.organization)
        if target is None or not await self.engine.ensure_loaded(target.org_id):
            return None
        return target

    async def check(self, case: Case, scope: str) -> tuple[bool, list[str]]:
        target = await self._target(case)
        if target is None:
            return False, [NO_ACCESS]
        res = L.object_need(self.engine.policy, case.workspace, case.obj, scope)
        return (
            self.engine.decide(case.subject, target, scope, res),
            self.engine.explain(case.subject, target, scope, res),
        )

    async def scopes(self, case: Case) -> list[str]:
        target = await self._target(case)
        return [] if target is None else self.engine.scopes(case.subject, target, case.obj)

    async def batch(self, items: list[tuple[Case, str]]) -> list[bool] | None:
        return None  # the engine decides one at a time: check() already asked it

    async def http(self, case: Case) -> bool | None:
        return None if case.workspace else False  # matched: check() asked it; unmatched: denied


class GrpcPath:
    """A whole server: interceptors, servicer, decision cache, engine, over a loopback channel."""

    name = "grpc"

    def __init__(self, policy_dir: Path, database_url: str) -> None:
        from orgauthz.api.server import App
        from orgauthz.config import Settings

        # Explicit values: nothing from ORGAUTHZ_* variables (a shared Redis, a token) may leak in.
        # Callers present a secret made here, so Envoy's Check may read the proxy's subject header.
        self.token = secrets.token_urlsafe(24)
        self.metadata = (("authorization", f"Bearer {self.token}"),)
        options: dict[str, Any] = {
            "listen": "127.0.0.1:0",
            "metrics_listen": "",
            "database_url": database_url,
            "insecure_dev": False,
            "auth_token": self.token,
            "redis_url": "",
            "policy_dir": policy_dir,
            "migrate": False,
            "ext_authz": (policy_dir / FILE_NAME).exists() and importlib.util.find_spec("envoy") is not None,
            "ext_authz_subject_header": _SUBJECT_HEADER,
        }
        self.app = App(Settings(**options))
        self.channel: Any = None
        self.stub: Any = None

    async def start(self) -> None:
        import grpc

        from orgauthz.v1 import authorization_pb2_grpc as pb_grpc

        await self.app.start()
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.app.port}")
        self.stub = pb_grpc.AuthorizationServiceStub(self.channel)

    async def stop(self) -> None:
        if self.channel is not None:
            await self.channel.close()
        await self.app.stop(0)

    @staticmethod
    def _request(case: Case, scope: str, *, explain: bool = False) -> Any:
        from orgauthz.v1 import authorization_pb2 as pb

        req = pb.CheckRequest(subject=case.subject, scope=scope, explain=explain, object=case.obj)
        if case.workspace:
            req.workspace = case.workspace
        else:
            req.organization = case.organization
        return req

    async def check(self, case: Case, scope: str) -> tuple[bool, list[str]]:
        md = self.metadata
        cold = await self.stub.Check(self._request(case, scope), timeout=10, metadata=md)
        warm = await self.stub.Check(self._request(case, scope), timeout=10, metadata=md)  # from the cache
        explained = await self.stub.Check(self._request(case, scope, explain=True), timeout=10, metadata=md)
        answers = {cold.allowed, warm.allowed, explained.allowed}
        if len(answers) > 1:
            raise AssertionError(
                f"Check answered {cold.allowed} cold, {warm.allowed} from the cache and "
                f"{explained.allowed} with explain for {scope}"
            )
        return bool(cold.allowed), list(explained.reasons)

    async def scopes(self, case: Case) -> list[str]:
        from orgauthz.v1 import authorization_pb2 as pb

        req = pb.ListScopesRequest(subject=case.subject, object=case.obj)
        if case.workspace:
            req.workspace = case.workspace
        else:
            req.organization = case.organization
        resp = await self.stub.ListScopes(req, timeout=10, metadata=self.metadata)
        return list(resp.scopes)

    async def batch(self, items: list[tuple[Case, str]]) -> list[bool] | None:
        from orgauthz.v1 import authorization_pb2 as pb

        out: list[bool] = []
        for i in range(0, len(items), 1000):
            chunk = items[i : i + 1000]
            resp = await self.stub.BatchCheck(
                pb.BatchCheckRequest(items=[self._request(c, s) for c, s in chunk]), timeout=30, metadata=self.metadata
            )
            out += [bool(r.allowed) for r in resp.results]
        return out

    async def http(self, case: Case) -> bool | None:
        if case.request is None:
            return None
        if not self.app.settings.ext_authz:
            raise TestFileError(f"{case.file}: request cases need the envoy extra (pip install 'orgauthz[envoy]')")
        from envoy.service.auth.v3 import attribute_context_pb2 as attr
        from envoy.service.auth.v3 import external_auth_pb2 as ext
        from envoy.service.auth.v3 import external_auth_pb2_grpc as ext_grpc

        method, path = case.request
        http = attr.AttributeContext.HttpRequest(method=method, path=path, headers={_SUBJECT_HEADER: case.subject})
        req = ext.CheckRequest(attributes=attr.AttributeContext(request=attr.AttributeContext.Request(http=http)))
        resp = await ext_grpc.AuthorizationStub(self.channel).Check(req, timeout=10, metadata=self.metadata)
        if resp.HasField("ok_response") != (resp.status.code == 0):
            raise AssertionError(
                f"Envoy Check answered status {resp.status.code} with {resp.WhichOneof('http_response')}"
            )
        return bool(resp.status.code == 0)


# -- running -------------------------------------------------------------------------------


def _verdict(allowed: bool) -> str:
    return "allow" if allowed else "deny"


async def run_cases(path: DecisionPath, test: TestFile) -> list[str]:
    """Runs every case of ``test`` on one path; returns failure messages naming file and case."""
    failures: list[str] = []
    for case in test.cases:
        label = f"{case.file}: case {case.name!r} [{path.name}]"
        for scope, want in case.checks():
            try:
                got, reasons = await path.check(case, scope)
            except AssertionError as exc:
                failures.append(f"{label}: {exc}")
                continue
            if got != want:
                why = "; ".join(reasons) or "no reasons given"
                failures.append(
                    f"{label}: {case.subject} in {case.where}: expected {_verdict(want)} {scope}, "
                    f"got {_verdict(got)} ({why})"
                )
                continue
            lacking = [b for b in case.because if not any(b in r for r in reasons)]
            if lacking:
                failures.append(
                    f"{label}: {case.subject} {scope} in {case.where}: reasons {reasons} do not mention {lacking}"
                )
        if case.scopes is not None:
            got_scopes = tuple(await path.scopes(case))
            if got_scopes != case.scopes:
                extra = sorted(set(got_scopes) - set(case.scopes))
                missing = sorted(set(case.scopes) - set(got_scopes))
                failures.append(
                    f"{label}: ListScopes({case.subject}, {case.where}): unexpected {extra}, missing {missing}"
                )
        if case.request is not None:
            try:
                verdict = await path.http(case)
            except AssertionError as exc:
                failures.append(f"{label}: {exc}")
                continue
            if verdict is not None and verdict != case.expect:
                failures.append(
                    f"{label}: {case.subject} {' '.join(case.request)}: expected {_verdict(case.expect)}, "
                    f"got {_verdict(verdict)}{'' if case.workspace else ' (no route matches)'}"
                )
    items = [(case, scope) for case in test.cases for scope, _ in case.checks()]
    answers = await path.batch(items) if items else None
    if answers is not None:
        for (case, scope), got in zip(items, answers, strict=True):
            want = scope in case.allow
            if got != want:
                failures.append(
                    f"{case.file}: case {case.name!r} [{path.name} BatchCheck]: {case.subject} in "
                    f"{case.where}: expected {_verdict(want)} {scope}, got {_verdict(got)}"
                )
    return failures


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The servers started here log at start and stop (insecure mode...); reviewers need the verdicts."""
    logger = logging.getLogger("orgauthz")
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


async def run_file(test: TestFile, policy: PolicySet, policy_dir: Path, paths: tuple[str, ...]) -> list[str]:
    """Imports the fixture into a fresh SQLite file and runs every case on each path."""
    from orgauthz.store.db import open_store
    from orgauthz.store.importer import import_document

    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="orgauthz-policy-test-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'store.db'}"
        db = open_store(url)
        try:
            db.migrate()
            import_document(db, policy, test.document)
        except OrgAuthzError as exc:
            raise TestFileError(f"{display_path(test.path)}: organization fixture: {exc}") from None
        finally:
            db.dispose()
        for name in paths:
            runner: DecisionPath = EnginePath(policy, url) if name == "engine" else GrpcPath(policy_dir, url)
            await runner.start()
            try:
                failures += await run_cases(runner, test)
            finally:
                await runner.stop()
    return failures


def find_test_files(directory: Path) -> list[Path]:
    return sorted((directory / "tests").glob("*.yaml")) + sorted((directory / "tests").glob("*.yml"))


async def run_suite(
    directory: Path, *, files: list[Path] | None = None, paths: list[str] | tuple[str, ...] = ()
) -> Report:
    """Runs the test files (default: every ``DIR/tests/*.yaml``) on the chosen paths (default both)."""
    chosen = tuple(p for p in PATHS if p in paths) or PATHS
    report = Report(paths=chosen)
    try:
        policy = load_policy(directory)
    except OrgAuthzError as exc:
        report.errors.append(f"{display_path(directory)}: the policies do not load ({exc}); run `orgauthz policy lint`")
        return report
    with _quiet():
        for path in files or find_test_files(directory):
            try:
                test = read_test_file(path, policy)
                failures = await run_file(test, policy, directory, chosen)
            except TestFileError as exc:
                report.errors.append(str(exc))
                continue
            report.files += 1
            report.cases += len(test.cases)
            report.checks += sum(
                len(c.allow) + len(c.deny) + (c.scopes is not None) + (c.request is not None) for c in test.cases
            )
            report.failures += failures
            failed = {f.split(" [", 1)[0] for f in failures}
            report.passed_cases += [
                f"{c.file}: case {c.name!r}" for c in test.cases if f"{c.file}: case {c.name!r}" not in failed
            ]
    return report
