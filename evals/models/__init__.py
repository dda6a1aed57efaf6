"""Model registry: the bundled tiny IDEFICS (default), IDEFICS hub checkpoints, the scripted test model.

`resolve_model` accepts a registered name, a local checkpoint folder, or a hub id (org/name).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evals.models.base import Model, ModelInfo
from evals.models.scripted import ScriptedModel
from evals.registry import MODELS

BUNDLED_CHECKPOINT = Path(__file__).parent / "tiny_idefics"
DEFAULT_MODEL = "tiny-idefics"


@dataclass(frozen=True)
class ModelEntry:
    """A named model: how to build it, and what `evals models` says about it."""

    description: str
    build: Callable[[str, str], Model]  # (device, dtype) -> model


def idefics_entry(name: str, checkpoint: str | Path, description: str) -> ModelEntry:
    def build(device: str, dtype: str) -> Model:
        from evals.models.idefics import IdeficsModel

        return IdeficsModel.load(checkpoint, device=device, dtype=dtype, name=name)

    return ModelEntry(description, build)


MODELS.add(DEFAULT_MODEL, idefics_entry(DEFAULT_MODEL, BUNDLED_CHECKPOINT, "bundled tiny IDEFICS (random weights, ~1 MB), offline"))
for _size in ("9b", "80b"):
    for _variant in ("", "-instruct"):
        _name = f"idefics-{_size}{_variant}"
        MODELS.add(_name, idefics_entry(_name, f"HuggingFaceM4/{_name}", f"HuggingFaceM4/{_name} (hub or local cache)"))
MODELS.add("scripted", ModelEntry("fixed answer 'yes' to every question (pipeline tests)", lambda d, t: ScriptedModel()))


def resolve_model(spec: str, device: str = "cpu", dtype: str = "float32") -> Model:
    """A registered name, else a local IDEFICS folder, else a hub id; otherwise a did-you-mean error."""
    if spec in MODELS:
        return MODELS.get(spec).build(device, dtype)
    if Path(spec).is_dir() or "/" in spec:
        from evals.models.idefics import IdeficsModel

        return IdeficsModel.load(spec, device=device, dtype=dtype)
    return MODELS.get(spec)  # raises UnknownNameError with suggestions


__all__ = ["DEFAULT_MODEL", "Model", "ModelInfo", "ScriptedModel", "resolve_model"]
