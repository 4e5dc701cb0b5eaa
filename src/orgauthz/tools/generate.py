"""Generate what is derived from the code: the protobuf stubs and the docs' generated blocks.

``python -m orgauthz.tools.generate`` (``make generate``) writes

- the protobuf and gRPC stubs in ``src/orgauthz/v1`` from ``proto/``;
- ``src/orgauthz/client_rpcs.py``, the client's method for every RPC
  (:mod:`orgauthz.tools.client_gen`), from those stubs' descriptors;
- the module tree in docs/architecture.md: every module under ``src/orgauthz/`` with the
  first line of its docstring (a module without a docstring is an error);
- the settings table in docs/operations.md: every field of :class:`orgauthz.config.Settings`
  with its environment variable, default and description.

A generated block sits between ``<!-- generated: NAME -->`` and ``<!-- end generated -->``;
the prose around it is written by hand. ``--check`` (``make check-generated``, CI) writes
nothing and exits 1 when the stubs or a block are stale.
"""

from __future__ import annotations

import argparse
import ast
import filecmp
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]  # grpcio-tools ships no stubs
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[3]
PROTO_DIR = ROOT / "proto"
PACKAGE = ROOT / "src" / "orgauthz"
DOCS = ROOT / "docs"
OUT_PACKAGE = Path("orgauthz") / "v1"
CLIENT_RPCS = PACKAGE / "client_rpcs.py"
HEADER = '"""Generated protobuf stubs for orgauthz.v1. Do not edit: run `make generate`."""\n'
BEGIN = "<!-- generated: {name} -->"
END = "<!-- end generated -->"
_NAME_COLUMN = 26  # the module tree's names, then the docstrings' first lines


class GenerateError(Exception):
    """The code cannot be documented as it is (a module without a docstring, a doc without its markers)."""


# -- protobuf stubs -------------------------------------------------------------------


def _generate(out_dir: Path) -> list[Path]:
    protos = sorted(PROTO_DIR.glob("orgauthz/v1/*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{Path(protoc.__file__).parent / '_proto'}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p) for p in protos),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (out_dir / OUT_PACKAGE / "__init__.py").write_text(HEADER)
    return sorted((out_dir / OUT_PACKAGE).iterdir())


def stale_stubs(target: Path) -> list[str]:
    """Stub files under ``target`` (the ``src`` directory) that differ from freshly generated
    ones, or that protoc no longer writes; empty when they are current."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = _generate(Path(tmp))
        stale = [
            f.name
            for f in fresh
            if f.suffix in {".py", ".pyi"}
            and not (
                (target / OUT_PACKAGE / f.name).exists()
                and filecmp.cmp(f, target / OUT_PACKAGE / f.name, shallow=False)
            )
        ]
        committed = {p.name for p in (target / OUT_PACKAGE).glob("*.py*")}
        extra = committed - {f.name for f in fresh}
    return sorted(stale) + [f"{name} (extra)" for name in sorted(extra)]


def stale_client(path: Path = CLIENT_RPCS) -> list[str]:
    """``path`` when it differs from the client methods rendered from the committed stubs."""
    from orgauthz.tools.client_gen import render

    current = path.read_text(encoding="utf-8") if path.exists() else ""
    return [] if current == render() else [path.name]


# -- the module tree ------------------------------------------------------------------


def _plain(text: str) -> str:
    """A docstring line without reStructuredText roles: ``:class:`~a.B``` -> `B`, ````x```` -> `x`."""

    def role(m: re.Match[str]) -> str:
        target = m[1].split("<")[0].strip() if "<" in m[1] else m[1]
        return f"`{target[1:].rsplit('.', 1)[-1] if target.startswith('~') else target}`"

    return re.sub(r"``([^`]+)``", r"`\1`", re.sub(r":[a-z]+:`([^`]+)`", role, text))


def _summary(path: Path, missing: list[Path]) -> str:
    """The docstring's first line; ``path`` goes to ``missing`` when it has no docstring, or
    when that line runs on into the next (it is all the tree shows)."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    lines = (doc or "").splitlines()
    if not lines or not lines[0].strip() or (len(lines) > 1 and lines[1].strip()):
        missing.append(path)
        return ""
    return _plain(lines[0].strip())


def _row(indent: int, name: str, summary: str) -> str:
    left = " " * indent + name
    return f"{left.ljust(max(_NAME_COLUMN, len(left) + 2))}{summary}".rstrip()


def module_tree(package: Path) -> str:
    """The fenced tree of ``package``: its modules, then its subpackages (directories holding
    Python files), each with the first line of its docstring; a package's line carries its
    ``__init__.py``'s. The generated stubs (``v1/``) are one line. Raises
    :class:`GenerateError` naming every module without a docstring."""
    missing: list[Path] = []
    rows: list[str] = []

    def walk(directory: Path, indent: int) -> None:
        for module in sorted(p for p in directory.glob("*.py") if p.name != "__init__.py"):
            rows.append(_row(indent, module.name, _summary(module, missing)))
        for sub in sorted(d for d in directory.iterdir() if d.is_dir() and any(d.rglob("*.py"))):
            init = sub / "__init__.py"
            rows.append(_row(indent, f"{sub.name}/", _summary(init, missing) if init.exists() else ""))
            if sub != package / OUT_PACKAGE.name:
                walk(sub, indent + 2)

    walk(package, 2)
    if missing:
        shown = ", ".join(str(path.relative_to(package.parent)) for path in missing)
        raise GenerateError(f"modules without a docstring whose first line, alone, says what the module is: {shown}")
    head = _row(0, f"src/{package.name}/", _summary(package / "__init__.py", missing))
    return "\n".join(["```", head, *rows, "```"])


# -- the settings table ---------------------------------------------------------------


def _default(value: object) -> str:
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def settings_table(settings: type[BaseSettings] | None = None) -> str:
    """A Markdown table of every field of ``settings`` (:class:`orgauthz.config.Settings`):
    environment variable, default, description. Raises :class:`GenerateError` for a field
    without a description."""
    if settings is None:
        from orgauthz.config import Settings

        settings = Settings
    prefix = str(settings.model_config.get("env_prefix", ""))
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in settings.model_fields.items():
        if not field.description:
            raise GenerateError(f"{settings.__name__}.{name} has no description")
        description = " ".join(field.description.split()).replace("|", "\\|")
        rows.append(f"| `{prefix}{name.upper()}` | {_default(field.default)} | {description} |")
    return "\n".join(rows)


# -- generated blocks in the docs -----------------------------------------------------

BLOCKS: dict[str, tuple[str, Callable[[], str]]] = {
    "modules": ("architecture.md", lambda: module_tree(PACKAGE)),
    "settings": ("operations.md", settings_table),
}


def fill(text: str, name: str, body: str) -> str:
    """``text`` with the block ``name`` holding ``body``; GenerateError without its markers."""
    begin = BEGIN.format(name=name)
    start = text.find(begin)
    end = text.find(END, start + len(begin)) if start >= 0 else -1
    if start < 0 or end < 0:
        raise GenerateError(f"no {begin} ... {END} block")
    return f"{text[: start + len(begin)]}\n{body}\n{text[end:]}"


def generated_docs(docs: Path) -> dict[Path, str]:
    """Each doc with a generated block, as it should read."""
    out: dict[Path, str] = {}
    for name, (file, render) in BLOCKS.items():
        path = docs / file
        try:
            out[path] = fill(out.get(path) or path.read_text(encoding="utf-8"), name, render())
        except GenerateError as exc:
            raise GenerateError(f"{path}: {exc}") from None
    return out


def stale_docs(docs: Path) -> list[str]:
    """The docs whose generated blocks differ from the code; empty when they are current."""
    return [str(path) for path, text in generated_docs(docs).items() if path.read_text(encoding="utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="write nothing; fail when anything generated is stale")
    opts = parser.parse_args(argv)
    target = ROOT / "src"
    try:
        if not opts.check:
            _generate(target)
            print(f"generated stubs in {target / OUT_PACKAGE}")
            from orgauthz.tools.client_gen import render  # after the stubs it reads are written

            CLIENT_RPCS.write_text(render(), encoding="utf-8")
            print(f"generated client methods in {CLIENT_RPCS}")
            for path, text in generated_docs(DOCS).items():
                path.write_text(text, encoding="utf-8")
                print(f"generated blocks in {path}")
            return 0
        stubs, docs = stale_stubs(target) + stale_client(), stale_docs(DOCS)
    except GenerateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if stubs or docs:
        if stubs:
            print(f"stale generated stubs: {stubs}; run `make generate`")
        if docs:
            print(f"stale generated docs: {docs}; run `make generate`")
        return 1
    print("generated stubs and docs are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
