"""The bundled checkpoint and demo data are exactly what the scripts in scripts/ regenerate."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageChops

from evals.models import BUNDLED_CHECKPOINT
from evals.registry import TASKS, suite_tasks
from evals.runner import fingerprint

REPO = Path(__file__).resolve().parent.parent


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(comparable_bytes(p)).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def comparable_bytes(path: Path) -> bytes:
    """A file's bytes, less the `transformers_version` a checkpoint's config files record: which release saved a
    file is provenance, and the training script must rebuild the shipped configuration on every release CI tests."""
    if path.name not in ("config.json", "generation_config.json"):
        return path.read_bytes()
    config = json.loads(path.read_text())
    config.pop("transformers_version", None)
    return json.dumps(config, sort_keys=True).encode()


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


@pytest.mark.slow  # the training script's picture filter: about a minute a call
def test_training_script_is_reproducible_and_builds_the_shipped_tokenizer_and_config(tmp_path):
    """Two runs of two steps give identical files (weights included); their tokenizer and configuration are the
    shipped ones (the shipped weights took the full run)."""
    made = train_briefly(tmp_path / "first")
    assert train_briefly(tmp_path / "again") == made
    shipped = tree_hashes(BUNDLED_CHECKPOINT)
    assert set(made) == set(shipped)
    assert sorted(name for name in made if made[name] != shipped[name]) == ["model.safetensors", "training.json"]


@pytest.fixture(scope="module")
def train_script():
    """scripts/train_tiny_idefics.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("train_tiny_idefics", REPO / "scripts" / "train_tiny_idefics.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture(scope="module")
def pools(train_script):
    return train_script.training_pools(list(train_script.TASK_MIX))


def scene(shapes: list[tuple[str, str]], shift: tuple[int, int] = (0, 0), quality: int | None = None) -> np.ndarray:
    """A demo scene as the demo sets make one: drawn, shifted (wrapping round), saved as PNG or as JPEG."""
    if str(REPO / "scripts" / "demo") not in sys.path:
        sys.path.insert(0, str(REPO / "scripts" / "demo"))
    from shapes import draw_scene

    image = ImageChops.offset(draw_scene(shapes), *shift)
    saved = io.BytesIO()
    image.save(saved, format="JPEG", quality=quality) if quality else image.save(saved, format="PNG")
    return np.asarray(Image.open(saved).convert("RGB"), dtype=np.float32)


def test_a_scene_saved_again_or_moved_a_little_is_found_and_a_changed_scene_is_not(train_script):
    three = [("red", "square"), ("green", "circle"), ("yellow", "square")]
    shown = np.stack([scene(three), scene([("blue", "triangle")], shift=(5, -3))])
    candidates = [
        scene(three, quality=95),                                      # the same scene as JPEG: found
        scene([("blue", "triangle")], shift=(7, -2), quality=90),      # moved by two and one pixels, JPEG: found
        scene([("red", "circle"), ("green", "circle"), ("yellow", "square")], quality=95),  # one shape changed
        scene([("blue", "triangle")], shift=(8, -3)),                  # moved by three pixels: still found
        scene([("blue", "triangle")], shift=(9, -3)),                  # moved by four pixels: a new picture
        scene([("blue", "square")], shift=(5, -3)),                    # another shape in the same place
    ]
    assert train_script.shown_in(np.stack(candidates), shown).tolist() == [True, True, False, True, False, False]


@pytest.mark.slow  # the training script's picture filter: about a minute a call
def test_training_pools_hold_no_eval_picture(train_script, pools):
    """The demo scenes come from a small space, and the demo sets save them as PNG or JPEG at different qualities:
    the copies found in review (one scene saved by two demo sets, found by mean absolute difference) are left out."""
    kept = {ref.path for task_pools in pools.values() for pool in task_pools for e in pool for ref in e.images}
    copies = {  # train picture: the eval picture it is (mean absolute difference 1 to 4)
        "classification/train/n90000002/n90000002_21.JPEG": "what/val2014 1038",
        "classification/train/n90000002/n90000002_38.JPEG": "what/val2014 1038",
        "classification/train/n90000006/n90000006_105.JPEG": "captioning 7009, visdial val 1006",
        "hateful_memes/img/10005.png": "vqa/val2014 1012 and 1030, visdial val 1027",
        "vqa/train2014/COCO_train2014_000000000008.jpg": "winoground ex_3_img_1",
        "vqa/train2014/COCO_train2014_000000002310.jpg": "winoground ex_7_img_0",
    }
    demo = REPO / "tasks" / "demo"
    assert kept and not {str(Path(path).relative_to(demo)) for path in kept} & set(copies)
    assert all((demo / path).is_file() for path in copies)
    # there were copies to leave out: the unfiltered VQA train split shows eval pictures
    assert len(pools["demo_vqa"][0]) < len(train_script.support_examples("demo_vqa"))


@pytest.mark.slow  # the training script's picture filter: about a minute a call
def test_training_record_counts_the_pools_todays_data_gives(pools):
    """The pools depend on every demo eval split too: a changed eval split needs a retrained model."""
    record = training_record()
    assert record["train_examples_used"] == {name: [len(pool) for pool in task_pools] for name, task_pools in pools.items()}
    for name, digest in record["eval_data"].items():
        task = TASKS.get(name)
        assert fingerprint(task.read(task.source(None), task.query_split)) == digest, name
    assert set(record["eval_data"]) == set(suite_tasks("demo"))
