"""Generate the Python gRPC code for protos/start/v1/*.proto, beside the .proto files.

The generated modules are committed (so an install needs no compiler) and CI re-runs
this script and fails when the committed files differ: `python scripts/gen_protos.py --check`.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE = PROTO_ROOT / "start" / "v1"


def generate(out_root: Path) -> list[Path]:
    protos = sorted(PACKAGE.glob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *[str(p.relative_to(PROTO_ROOT)) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted((out_root / "start" / "v1").glob("*_pb2*.py*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    check = parser.parse_args().check
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        stale = [
            f.name
            for f in fresh
            if not (PACKAGE / f.name).exists() or not filecmp.cmp(f, PACKAGE / f.name, shallow=False)
        ]
        current = {p.name for p in PACKAGE.glob("*_pb2*.py*")}
        extra = sorted(current - {f.name for f in fresh})
        if check:
            if stale or extra:
                sys.exit(f"generated code is stale: {stale + extra}; run python scripts/gen_protos.py")
            print(f"generated code is fresh ({len(fresh)} files)")
            return
        for f in fresh:
            shutil.copyfile(f, PACKAGE / f.name)
        for name in extra:
            (PACKAGE / name).unlink()
        print(f"wrote {len(fresh)} files to {PACKAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
