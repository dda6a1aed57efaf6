"""Regenerate the bundled demo suite (tasks/demo/<family>) in each benchmark's official file formats.

Each module in scripts/demo/ (except the shared drawing helpers) builds one family's demo set into
its own folder from its own seeded RNG: running the script twice gives identical files.

    python scripts/make_demo_data.py [OUT]      # writes tasks/demo/* (or OUT/*)
"""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "tasks" / "demo"
SHARED = {"shapes"}


def families() -> list[str]:
    return sorted(p.stem for p in (HERE / "demo").glob("*.py") if p.stem not in SHARED)


def main(out: Path = OUT) -> None:
    sys.path.insert(0, str(HERE / "demo"))
    for family in families():
        folder = out / family
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        importlib.import_module(family).build(folder)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
