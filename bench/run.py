"""`python bench/run.py <name>`: run bench/<name>.py's main() and print its result as JSON."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALIASES = {"test": "authoring"}  # `python bench/run.py test`: flowdeck test's runner (bench/authoring.py)


def main(argv: list[str]) -> int:
    available = sorted(
        p.stem for p in HERE.glob("*.py") if p.stem not in ("run", "__init__") and not p.stem.startswith("_")
    )
    if len(argv) == 1 and argv[0] in ALIASES:
        argv = [ALIASES[argv[0]]]
    if len(argv) != 1 or argv[0] not in available:
        print(f"usage: python bench/run.py {{{'|'.join(available + sorted(ALIASES))}}}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE.parent))
    spec = importlib.util.spec_from_file_location(f"bench_{argv[0]}", HERE / f"{argv[0]}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    print(json.dumps(module.main(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
