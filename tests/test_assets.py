"""The bundled checkpoint and demo data are exactly what the scripts in scripts/ regenerate."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from evals.models import BUNDLED_CHECKPOINT

REPO = Path(__file__).resolve().parent.parent


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_demo_data_regenerates_identically(tmp_path):
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_demo_data.py"), str(tmp_path / "demo")], check=True,
                   capture_output=True)
    assert tree_hashes(tmp_path / "demo") == tree_hashes(REPO / "tasks" / "demo")


def test_tiny_checkpoint_regenerates_identically(tmp_path):
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_tiny_idefics.py"), str(tmp_path / "ckpt")],
                   check=True, capture_output=True)
    assert tree_hashes(tmp_path / "ckpt") == tree_hashes(BUNDLED_CHECKPOINT)
    assert sum(p.stat().st_size for p in BUNDLED_CHECKPOINT.iterdir()) < 5_000_000
