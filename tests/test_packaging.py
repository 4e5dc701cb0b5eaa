"""The declared floors tell the truth about the committed stubs and the lowest-version lock;
the built package carries everything it runs with, the policy files included."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from orgauthz.domain.policy import DEFAULT_POLICY_DIR

ROOT = Path(__file__).resolve().parents[1]
STUBS = ROOT / "src" / "orgauthz" / "v1"
UV = ROOT / ".venv-uv" / "bin" / "uv"


def _floors() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    floors = {}
    for line in reqs:
        req = Requirement(line)
        lows = [s.version for s in req.specifier if s.operator == ">="]
        assert len(lows) == 1, f"{line}: one >= floor expected"
        floors[req.name.lower().replace("_", "-")] = lows[0]
    return floors


def _pinned_text(text: str) -> dict[str, str]:
    return {m[1].lower(): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", text, re.M)}


def _pinned(path: Path) -> dict[str, str]:
    return _pinned_text(path.read_text())


def test_grpc_floors_are_the_version_the_stubs_were_generated_for() -> None:
    generated = {re.search(r"GRPC_GENERATED_VERSION = '([^']+)'", p.read_text())[1] for p in STUBS.glob("*_grpc.py")}
    floors = _floors()
    assert {floors[n] for n in ("grpcio", "grpcio-health-checking", "grpcio-reflection")} == generated


def test_protobuf_floor_is_the_runtime_the_stubs_were_generated_for() -> None:
    versions = set()
    for stub in STUBS.glob("*_pb2.py"):
        m = re.search(
            r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+),",
            stub.read_text(),
        )
        assert m, stub.name
        versions.add(".".join(m.groups()))
    assert versions == {_floors()["protobuf"]}


def test_lowest_lock_pins_every_direct_dependency_at_its_floor() -> None:
    pinned = _pinned(ROOT / "requirements" / "lowest.txt")
    wrong = {
        name: (floor, pinned.get(name))
        for name, floor in _floors().items()
        if name not in pinned or Version(pinned[name]) != Version(floor)
    }
    assert not wrong, f"requirements/lowest.txt is stale or a floor is untrue (floor, pinned): {wrong}; run make lock"


def test_build_gating_tools_are_pinned_exactly() -> None:
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    exact = {Requirement(r).name for r in dev if "==" in r}
    assert {"ruff", "mypy", "grpcio-tools"} <= exact


def test_the_runtime_installs_no_development_tool() -> None:
    runtime = {
        Requirement(r).name.lower()
        for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    assert not runtime & {"grpcio-tools", "matplotlib", "py-spy", "pytest", "mypy", "ruff", "hypothesis"}


def test_the_image_installs_the_locked_runtime_only() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements/uv.txt" in dockerfile
    assert "uv export --frozen --no-emit-project" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    uv = ROOT / ".venv-uv" / "bin" / "uv"
    assert uv.exists(), "make setup installs uv into .venv-uv"
    out = subprocess.run(
        [str(uv), "export", "--frozen", "--no-emit-project", "--format", "requirements-txt", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    exported = _pinned_text(out)
    assert not exported.keys() & {"grpcio-tools", "matplotlib", "py-spy", "pytest", "mypy", "ruff", "hypothesis"}
    assert {"grpcio", "protobuf", "pycasbin", "redis", "psycopg"} <= exported.keys()
    assert "--hash=sha256:" in out


def _lock_check(where: Path) -> subprocess.CompletedProcess[str]:
    uv = ROOT / ".venv-uv" / "bin" / "uv"
    assert uv.exists(), "make setup installs uv into .venv-uv"
    return subprocess.run(
        [str(uv), "lock", "--check", "--python", sys.executable],
        capture_output=True,
        text=True,
        cwd=where,
        check=False,
    )


def test_make_test_refuses_a_lock_out_of_date_with_pyproject(tmp_path: Path) -> None:
    """`make test` runs `make check-lock` first; it passes on the committed lock and fails
    once pyproject.toml asks for something the lock was not made from."""
    assert re.search(r"^test: check-lock ", (ROOT / "Makefile").read_text(), re.M)
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    current = _lock_check(tmp_path)
    assert current.returncode == 0, current.stderr
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"PyYAML>=6",', '"PyYAML>=6.0.1",', 1))
    stale = _lock_check(tmp_path)
    assert stale.returncode != 0
    assert "needs to be updated" in stale.stderr


def _setuptools() -> dict[str, object]:
    config: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return config


def test_the_package_list_names_every_package_under_src_and_the_policies() -> None:
    """pyproject.toml lists the packages (orgauthz.policies lives outside src/, which rules
    out setuptools' find): a package added under src/ must be added there too."""
    config = _setuptools()
    assert config["package-dir"] == {"": "src", "orgauthz.policies": "policies"}
    src = ROOT / "src"
    under_src = {
        ".".join(d.relative_to(src).parts)
        for d in [src / "orgauthz", *(src / "orgauthz").rglob("*")]
        if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))
    }
    assert set(config["packages"]) == under_src | {"orgauthz.policies"}  # type: ignore[arg-type]


def test_the_policies_are_found_in_the_installed_package() -> None:
    """No policy directory configured: the package's own copy, which an editable install
    (this one) maps to the top-level policies/ itself."""
    assert DEFAULT_POLICY_DIR.resolve() == (ROOT / "policies").resolve()


def _policy_files() -> list[str]:
    top = ROOT / "policies"
    return sorted(str(p.relative_to(top)) for p in top.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def test_the_wheel_carries_the_policy_files_and_every_module(tmp_path: Path) -> None:
    """Built from a copy of the sources (the checkout is not written to), the wheel holds
    policies/ as orgauthz/policies/ and every module under src/orgauthz/."""
    tree = tmp_path / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("pyproject.toml", "README.md"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src", ignore=ignore)
    shutil.copytree(ROOT / "policies", tree / "policies", ignore=ignore)
    assert UV.exists(), "make setup installs uv into .venv-uv"
    subprocess.run(
        [str(UV), "build", "--wheel", "--quiet", "--out-dir", str(tmp_path / "dist"), str(tree)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
        timeout=120,
    )
    (wheel,) = (tmp_path / "dist").glob("orgauthz-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    policies = _policy_files()
    assert {"model.conf", "scopes.yaml", "roles.yaml", "__init__.py"} <= set(policies)
    assert any(name.startswith("tests/") for name in policies)
    missing = [name for name in policies if f"orgauthz/policies/{name}" not in names]
    assert not missing, f"policy files missing from the wheel: {missing}"
    modules = sorted(str(p.relative_to(ROOT / "src")) for p in (ROOT / "src" / "orgauthz").rglob("*.py"))
    assert not [m for m in modules if m not in names], "modules missing from the wheel"
