"""Generate the protobuf and gRPC stubs in ``src/orgauthz/v1`` from ``proto/``.

``python -m orgauthz.tools.generate`` writes them; ``--check`` writes them to a
temporary directory and exits 1 when the committed stubs differ (CI runs it).
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]  # grpcio-tools ships no stubs

ROOT = Path(__file__).resolve().parents[3]
PROTO_DIR = ROOT / "proto"
OUT_PACKAGE = Path("orgauthz") / "v1"
HEADER = '"""Generated protobuf stubs for orgauthz.v1. Do not edit: run `make generate`."""\n'


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when the stubs are stale")
    opts = parser.parse_args(argv)
    target = ROOT / "src"
    if not opts.check:
        _generate(target)
        print(f"generated stubs in {target / OUT_PACKAGE}")
        return 0
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
    if stale or extra:
        print(f"stale generated stubs: {sorted(stale)} extra: {sorted(extra)}; run `make generate`")
        return 1
    print("generated stubs are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
