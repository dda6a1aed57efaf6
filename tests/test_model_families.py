"""Model families: picked from a checkpoint's config.json model_type, a clear error otherwise, and added by a
third-party package through the `evals.models` entry-point group."""

from __future__ import annotations

import json
from importlib import metadata

import pytest

import evals.models.families as families
from evals.errors import ConfigError, DataError, EvalsError
from evals.models import resolve_model
from evals.models.families import FAMILIES, ModelFamily, detect_family, family_for_model_type
from evals.models.options import ModelOptions
from evals.models.scripted import ScriptedModel
from evals.registry import MODELS


def folder_with_config(tmp_path, config) -> str:
    (tmp_path / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    return str(tmp_path)


def test_model_type_picks_the_family(tmp_path):
    assert detect_family(folder_with_config(tmp_path, {"model_type": "idefics2"}), ModelOptions()).name == "idefics2"
    assert family_for_model_type("idefics", "x").name == "idefics"


def test_unsupported_model_type_lists_the_families(tmp_path):
    folder = folder_with_config(tmp_path, {"model_type": "llava"})
    with pytest.raises(ConfigError) as error:
        resolve_model(folder)
    assert str(error.value) == (f"model_type 'llava' in {tmp_path}/config.json is not supported; "
                                "supported families: generic, idefics, idefics2, idefics3")


@pytest.mark.parametrize(("config", "says"), [("{not json", "not a readable JSON config"), ({"architectures": []}, "no field 'model_type'")])
def test_bad_config_names_the_file(tmp_path, config, says):
    with pytest.raises(DataError, match=f"{tmp_path}/config.json: {says}"):
        resolve_model(folder_with_config(tmp_path, config))


def test_offline_hub_id_is_one_line(monkeypatch):
    with pytest.raises(EvalsError) as error:
        resolve_model("HuggingFaceM4/idefics2-not-here", options=ModelOptions(local_files_only=True))
    assert "cannot load IDEFICS checkpoint 'HuggingFaceM4/idefics2-not-here'" in str(error.value)
    assert "\n" not in str(error.value)


def test_idefics2_hub_checkpoints_are_registered():
    for name in ("idefics2-8b-base", "idefics2-8b", "idefics2-8b-chatty"):
        assert name in MODELS and "IDEFICS2" in MODELS.get(name).description


def test_idefics3_and_smolvlm_hub_checkpoints_are_registered_and_detected(tmp_path):
    for name in ("idefics3-8b-llama3", "smolvlm-256m-base", "smolvlm-256m-instruct", "smolvlm-500m-base",
                 "smolvlm-500m-instruct", "smolvlm-instruct"):
        assert name in MODELS and "Hugging" in MODELS.get(name).description
    for model_type in ("idefics3", "smolvlm"):
        folder = tmp_path / model_type
        folder.mkdir()
        assert detect_family(folder_with_config(folder, {"model_type": model_type}), ModelOptions()).name == "idefics3"


class FakeEntryPoint:
    def __init__(self, name: str, target) -> None:
        self.name, self.value, self.target = name, f"fake_pkg:{name}", target

    def load(self):
        if isinstance(self.target, Exception):
            raise self.target
        return self.target


@pytest.fixture
def plugin_entry_points(monkeypatch):
    """Stand-in for installed packages: `install(*entry_points)` makes them the `evals.models` group."""
    def install(*entries):
        monkeypatch.setattr(families, "_plugins_loaded", False)
        monkeypatch.setattr(metadata, "entry_points", lambda group=None: list(entries) if group == "evals.models" else [])
    yield install
    FAMILIES._entries.pop("toy", None)


def test_a_package_adds_a_family_through_its_entry_point(plugin_entry_points, tmp_path):
    loaded = []

    def load(checkpoint, device, options, name):
        loaded.append((checkpoint, device, options.dtype))
        return ScriptedModel()

    plugin_entry_points(FakeEntryPoint("toy", ModelFamily("toy", ("toy_vlm",), ("idefics",), load, "a toy family")))
    model = resolve_model(folder_with_config(tmp_path, {"model_type": "toy_vlm"}), options=ModelOptions(dtype="bfloat16"))
    assert isinstance(model, ScriptedModel) and loaded == [(str(tmp_path), "cpu", "bfloat16")]
    with pytest.raises(ConfigError, match="supported families: generic, idefics, idefics2, idefics3, toy"):
        family_for_model_type("other", "x")


def test_a_broken_family_plugin_is_named(plugin_entry_points):
    plugin_entry_points(FakeEntryPoint("broken", ImportError("no module named fake_pkg")))
    with pytest.raises(ConfigError, match="model family plugin 'broken' .* failed to load: ImportError"):
        family_for_model_type("idefics", "x")
