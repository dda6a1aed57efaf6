"""Model registry: the bundled tiny IDEFICS (default), IDEFICS and IDEFICS2 hub checkpoints, the scripted test model.

`resolve_model` accepts a registered name, a local checkpoint folder, or a hub id (org/name); a folder or hub id
gets its family from its config's `model_type` (evals/models/families.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evals.errors import ConfigError, DataError
from evals.models.base import Model, ModelInfo
from evals.models.families import FAMILIES, ModelFamily, detect_family
from evals.models.options import ModelOptions, parse_model_args
from evals.models.scripted import ScriptedModel
from evals.registry import MODELS

BUNDLED_CHECKPOINT = Path(__file__).parent / "tiny_idefics"
DEFAULT_MODEL = "tiny-idefics"


@dataclass(frozen=True)
class ModelEntry:
    """A named model: how to build it, and what `evals models` says about it.

    `build(device, dtype)` is the simple form (test models); `load(device, options)`, when given, takes every
    `--model-args` option. An entry without it accepts only a dtype.
    """

    description: str
    build: Callable[[str, str], Model]  # (device, dtype) -> model
    load: Callable[[str, ModelOptions], Model] | None = None

    def make(self, name: str, device: str, options: ModelOptions) -> Model:
        if self.load is not None:
            return self.load(device, options)
        if options.set_keys():
            raise ConfigError(f"model '{name}' takes no --model-args but dtype (got {', '.join(options.set_keys())})")
        return self.build(device, options.dtype)


def family_entry(family: str, name: str, checkpoint: str | Path, description: str) -> ModelEntry:
    def load(device: str, options: ModelOptions) -> Model:
        return FAMILIES.get(family).load(checkpoint, device, options, name)

    return ModelEntry(description, lambda device, dtype: load(device, ModelOptions(dtype=dtype)), load)


def idefics_entry(name: str, checkpoint: str | Path, description: str) -> ModelEntry:
    return family_entry("idefics", name, checkpoint, description)


MODELS.add(DEFAULT_MODEL, idefics_entry(DEFAULT_MODEL, BUNDLED_CHECKPOINT, "bundled tiny IDEFICS trained on the demo suite (~6 MB), offline"))
for _size in ("9b", "80b"):
    for _variant in ("", "-instruct"):
        _name = f"idefics-{_size}{_variant}"
        MODELS.add(_name, idefics_entry(_name, f"HuggingFaceM4/{_name}", f"HuggingFaceM4/{_name} (hub or local cache)"))
for _name, _kind in (("idefics2-8b-base", "base"), ("idefics2-8b", "instruct"), ("idefics2-8b-chatty", "chatty")):
    MODELS.add(_name, family_entry("idefics2", _name, f"HuggingFaceM4/{_name}", f"HuggingFaceM4/{_name}, IDEFICS2 {_kind} "
                                   "(hub or local cache)"))
MODELS.add("idefics3-8b-llama3", family_entry("idefics3", "idefics3-8b-llama3", "HuggingFaceM4/Idefics3-8B-Llama3",
                                              "HuggingFaceM4/Idefics3-8B-Llama3, Idefics3 instruct (hub or local cache)"))
for _name, _hub in (("smolvlm-256m-base", "SmolVLM-256M-Base"), ("smolvlm-256m-instruct", "SmolVLM-256M-Instruct"),
                    ("smolvlm-500m-base", "SmolVLM-500M-Base"), ("smolvlm-500m-instruct", "SmolVLM-500M-Instruct"),
                    ("smolvlm-instruct", "SmolVLM-Instruct")):
    MODELS.add(_name, family_entry("idefics3", _name, f"HuggingFaceTB/{_hub}", f"HuggingFaceTB/{_hub}, SmolVLM "
                                   "(hub or local cache)"))
MODELS.add("scripted", ModelEntry("fixed answer 'yes' to every question (pipeline tests)", lambda d, t: ScriptedModel()))


def resolve_model(spec: str, device: str = "cpu", dtype: str | None = None, options: ModelOptions | None = None) -> Model:
    """A registered name, else a local checkpoint folder or a hub id (family from its config's model_type);
    otherwise a did-you-mean error. `options` (default: `dtype` alone, float32) say how to load it."""
    if options is None:
        options = parse_model_args("", dtype=dtype or "float32")
    if spec in MODELS:
        return MODELS.get(spec).make(spec, device, options)
    check_model_name(spec)
    folder = os.path.expanduser(spec) if spec.startswith("~") else spec  # a sweep file's `~`: no shell expanded it
    return detect_family(folder, options).load(folder, device, options, None)


def looks_like_path(spec: str) -> bool:
    """Whether `--model` names a local folder rather than a hub id (`org/name`) or a registered name: it starts at
    here, home or the root (`./x`, `../x`, `~/x`, `/x`; a hub id cannot start so), ends with a slash, has more
    parts than a hub id's two, or is `dir/name` where the folder `dir` exists here."""
    if spec.startswith((".", "/", "~")) or spec.endswith(("/", os.sep)):
        return True
    parts = spec.replace(os.sep, "/").split("/")
    return len(parts) > 2 or (len(parts) == 2 and Path(parts[0]).is_dir())


def check_model_name(spec: str) -> None:
    """Fail before any model loads on a name that cannot resolve: a local folder that is not there (one line, not
    the hub client's complaint about the form of a repo id) or an unknown name (did-you-mean)."""
    if spec in MODELS:
        return
    if looks_like_path(spec):
        if not Path(spec).expanduser().is_dir():
            raise DataError(f"model folder not found: {spec}")
    elif "/" not in spec and not Path(spec).is_dir():  # `tiny2`: a folder here, or a typo of a registered name
        MODELS.get(spec)  # raises UnknownNameError with suggestions


__all__ = ["DEFAULT_MODEL", "Model", "ModelFamily", "ModelInfo", "ModelOptions", "ScriptedModel", "check_model_name",
           "resolve_model"]
