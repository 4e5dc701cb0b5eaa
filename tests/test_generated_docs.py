"""The docs' generated blocks (the module tree, the settings table) follow the code, and
``python -m orgauthz.tools.generate --check`` (``make check-generated``) fails when they do not."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from pydantic import Field

from orgauthz.config import Settings
from orgauthz.tools import generate

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = generate.BEGIN, generate.END


def _block(text: str, name: str) -> str:
    start = text.index(BEGIN.format(name=name))
    return text[start : text.index(END, start)]


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, body in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(body)
    return root / "pkg"


SMALL = {
    "pkg/__init__.py": '"""The package."""\n',
    "pkg/a.py": '"""Module a."""\n',
    "pkg/sub/__init__.py": '"""A subpackage."""\n',
    "pkg/sub/b.py": '"""Module b."""\n',
}


@pytest.fixture
def docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Copies of the docs, current for a small package (standing in for src/orgauthz, which
    others may be editing) and the real Settings, that ``generate`` reads and checks instead
    of the real ones; the stubs are not what these tests are about."""
    monkeypatch.setattr(generate, "PACKAGE", _package(tmp_path / "src", SMALL))
    monkeypatch.setattr(generate, "stale_stubs", lambda target: [])
    target = tmp_path / "docs"
    target.mkdir()
    for file, _ in generate.BLOCKS.values():
        shutil.copy(ROOT / "docs" / file, target / file)
    for path, text in generate.generated_docs(target).items():
        path.write_text(text)
    monkeypatch.setattr(generate, "DOCS", target)
    return target


def test_the_committed_blocks_are_current() -> None:
    assert generate.stale_docs(ROOT / "docs") == [], "run `make generate`"


def test_the_settings_table_lists_every_setting() -> None:
    block = _block((ROOT / "docs" / "operations.md").read_text(), "settings")
    listed = re.findall(r"^\| `(ORGAUTHZ_[A-Z0-9_]+)` \|", block, re.M)
    assert listed == [f"ORGAUTHZ_{name.upper()}" for name in Settings.model_fields]


def test_the_module_tree_lists_every_module() -> None:
    block = _block((ROOT / "docs" / "architecture.md").read_text(), "modules")
    package = ROOT / "src" / "orgauthz"
    for module in package.rglob("*.py"):
        if module.name == "__init__.py" or module.parent.name == "v1":
            continue
        assert re.search(rf"^ +{re.escape(module.name)} +\S", block, re.M), module


def test_check_passes_on_current_blocks(docs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert generate.main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("file", "body"),
    [
        pytest.param("pkg/sub/c.py", '"""Module c."""\n', id="a module added"),
        pytest.param("pkg/a.py", '"""Module a, renamed."""\n', id="a docstring changed"),
    ],
)
def test_check_fails_when_the_module_tree_is_stale(
    docs: Path, capsys: pytest.CaptureFixture[str], file: str, body: str
) -> None:
    (generate.PACKAGE.parent / file).write_text(body)
    assert generate.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "stale generated docs" in out
    assert str(docs / "architecture.md") in out
    assert str(docs / "operations.md") not in out
    # make generate brings it up to date; the prose around the block is untouched.
    before = (docs / "architecture.md").read_text()
    for path, text in generate.generated_docs(docs).items():
        path.write_text(text)
    after = (docs / "architecture.md").read_text()
    assert after.split(BEGIN.format(name="modules"))[0] == before.split(BEGIN.format(name="modules"))[0]
    assert generate.main(["--check"]) == 0


def test_check_fails_when_the_settings_table_is_stale(docs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = docs / "operations.md"
    text = path.read_text()
    path.write_text(text.replace("| `ORGAUTHZ_MAX_LOADED_ORGS` | `2000` |", "| `ORGAUTHZ_MAX_LOADED_ORGS` | `1000` |"))
    assert path.read_text() != text
    assert generate.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert str(path) in out
    assert str(docs / "architecture.md") not in out


def test_a_new_setting_makes_the_table_stale(docs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Grown(Settings):
        replay_batch: int = Field(500, ge=1, description="Changes applied per step of a replay")

    monkeypatch.setitem(generate.BLOCKS, "settings", ("operations.md", lambda: generate.settings_table(Grown)))
    assert generate.stale_docs(docs) == [str(docs / "operations.md")]
    row = "| `ORGAUTHZ_REPLAY_BATCH` | `500` | Changes applied per step of a replay |"
    assert row in generate.settings_table(Grown).splitlines()


def test_a_setting_without_a_description_is_an_error() -> None:
    class Undescribed(Settings):
        mystery: int = 3

    with pytest.raises(generate.GenerateError, match=r"Undescribed\.mystery has no description"):
        generate.settings_table(Undescribed)


def test_generation_keeps_the_prose_around_the_block() -> None:
    text = f"# Title\n\nHand-written.\n\n{BEGIN.format(name='modules')}\nold\n{END}\n\nMore prose.\n"
    filled = generate.fill(text, "modules", "new")
    assert filled == f"# Title\n\nHand-written.\n\n{BEGIN.format(name='modules')}\nnew\n{END}\n\nMore prose.\n"


def test_a_doc_without_its_markers_is_an_error(docs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = docs / "architecture.md"
    path.write_text(path.read_text().replace(BEGIN.format(name="modules"), ""))
    assert generate.main(["--check"]) == 1
    assert "no <!-- generated: modules -->" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("body", "why"),
    [
        pytest.param("x = 1\n", "no docstring", id="none"),
        pytest.param('"""Reads the widgets and\nwrites them back."""\n', "the first line runs on", id="runs-on"),
    ],
)
def test_a_module_without_a_one_line_summary_is_an_error(tmp_path: Path, body: str, why: str) -> None:
    package = _package(
        tmp_path,
        {"pkg/__init__.py": '"""The package."""\n', "pkg/good.py": '"""Good."""\n', "pkg/sub/bad.py": body},
    )
    with pytest.raises(generate.GenerateError, match=r"pkg/sub/bad\.py$"):
        generate.module_tree(package)


def test_the_tree_shows_each_docstring_first_line_without_markup(tmp_path: Path) -> None:
    package = _package(
        tmp_path,
        {
            "pkg/__init__.py": '"""The package."""\n',
            "pkg/a.py": '"""Wraps :class:`~pkg.b.Thing` for ``orgauthz serve``.\n\nMore.\n"""\n',
            "pkg/sub/__init__.py": '"""A subpackage."""\n',
            "pkg/sub/b.py": '"""Holds :mod:`pkg.sub`."""\n',
        },
    )
    assert generate.module_tree(package).splitlines() == [
        "```",
        "src/pkg/                  The package.",
        "  a.py                    Wraps `Thing` for `orgauthz serve`.",
        "  sub/                    A subpackage.",
        "    b.py                  Holds `pkg.sub`.",
        "```",
    ]
