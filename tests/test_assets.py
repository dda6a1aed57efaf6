"""The bundled checkpoint and demo data are exactly what the scripts in scripts/ regenerate."""

from __future__ import annotations

import hashlib
import json
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


def training_record() -> dict:
    return json.loads((BUNDLED_CHECKPOINT / "training.json").read_text())


def test_shipped_weights_are_the_ones_the_training_script_recorded():
    digest = hashlib.sha256((BUNDLED_CHECKPOINT / "model.safetensors").read_bytes()).hexdigest()
    assert digest == training_record()["model_safetensors_sha256"]
    assert sum(p.stat().st_size for p in BUNDLED_CHECKPOINT.iterdir()) < 10_000_000


def test_shipped_weights_were_trained_on_todays_demo_train_splits():
    """A change to a demo set's train split (or its reader) must come with a retrained checkpoint."""
    from evals.registry import TASKS
    from evals.runner import fingerprint

    recorded = training_record()["data"]
    for name, digest in recorded.items():
        task = TASKS.get(name)
        assert fingerprint(task.read(task.source(None), task.support_split)) == digest, name
    assert set(recorded) == {"demo_vqa", "demo_caption", "demo_classify", "demo_memes", "demo_dialog"}


def train_briefly(out: Path) -> dict[str, str]:
    subprocess.run([sys.executable, str(REPO / "scripts" / "train_tiny_idefics.py"), "--steps", "2", "--out", str(out)],
                   check=True, capture_output=True)
    record = json.loads((out / "training.json").read_text())
    del record["train_seconds"]  # the one field a rerun may change
    (out / "training.json").write_text(json.dumps(record))
    return tree_hashes(out)


def test_training_script_is_reproducible_and_builds_the_shipped_tokenizer_and_config(tmp_path):
    """Two runs of two steps give identical files (weights included); their tokenizer and configuration are the
    shipped ones (the shipped weights took the full run)."""
    made = train_briefly(tmp_path / "first")
    assert train_briefly(tmp_path / "again") == made
    shipped = tree_hashes(BUNDLED_CHECKPOINT)
    assert set(made) == set(shipped)
    assert sorted(name for name in made if made[name] != shipped[name]) == ["model.safetensors", "training.json"]


def test_training_pools_hold_no_eval_picture():
    """The demo scenes come from a small space, so a val picture can repeat a train picture: training leaves those out."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_tiny_idefics", REPO / "scripts" / "train_tiny_idefics.py")
    train = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = train  # dataclasses look their module up there
    spec.loader.exec_module(train)
    pools = train.training_pools(["demo_vqa", "demo_what"])
    vqa_eval = {key for e in train.eval_examples("demo_vqa") for key in train.image_keys(e)}
    what_eval = {key for e in train.eval_examples("demo_what") for key in train.image_keys(e)}
    vqa_kept = {key for e in pools["demo_vqa"][0] for key in train.image_keys(e)}
    what_kept = {key for pool in pools["demo_what"] for e in pool for key in train.image_keys(e)}
    assert vqa_kept and what_kept
    assert not vqa_kept & vqa_eval and not what_kept & what_eval
    # there were repeats to leave out: the unfiltered train split shows some eval pictures
    assert {key for e in train.support_examples("demo_vqa") for key in train.image_keys(e)} & vqa_eval
