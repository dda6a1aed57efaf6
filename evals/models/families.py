"""Model families (idefics, idefics2, idefics3, and any an installed package adds) and picking one from a checkpoint's config.

A family says which `config.json` `model_type` values it loads, its prompt formats and how to load a checkpoint.
`--model PATH` or a hub id reads the config's `model_type` and picks the family that claims it. A third-party package
adds a family through the entry-point group `evals.models`, naming a `ModelFamily` (or a function that registers one).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from evals.errors import ConfigError, DataError, EvalsError
from evals.models.base import Model
from evals.models.options import ModelOptions
from evals.registry import Registry

ENTRY_POINT_GROUP = "evals.models"


@dataclass(frozen=True)
class ModelFamily:
    """A kind of checkpoint: the config `model_type`s it claims and how to load one.

    `load(checkpoint, device, options, name)` returns a Model; `name` (None: the checkpoint) is how results call it.
    """

    name: str
    model_types: tuple[str, ...]
    formats: tuple[str, ...]
    load: Callable[[str | Path, str, ModelOptions, str | None], Model]
    description: str = ""
    options: tuple[str, ...] = ()  # family-specific --model-args keys
    supports: tuple[str, ...] = ()  # of CAPABILITIES: what `evals models` tells a user the family can do


# What a family can do, as `evals models` lists it: generation, candidate scoring, scoring with the prompt's key/value
# cache shared by its candidates, image features kept across prompts, one model spread over devices (device_map).
CAPABILITIES = ("generate", "score", "prefix reuse", "feature cache", "device_map")


FAMILIES: Registry = Registry("model family")
_plugins_loaded = False


def add_family(family: ModelFamily) -> ModelFamily:
    return FAMILIES.add(family.name, family)


def load_family_plugins() -> None:
    """Register the families installed packages declare (entry-point group `evals.models`), once."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
            if isinstance(loaded, ModelFamily):
                add_family(loaded)
            elif callable(loaded):
                loaded()
        except Exception as error:  # a broken plugin is named, not a traceback
            _plugins_loaded = False
            raise ConfigError(f"model family plugin '{entry.name}' ({entry.value}) failed to load: "
                              f"{error.__class__.__name__}: {error}") from None


def families() -> list[ModelFamily]:
    load_family_plugins()
    return [family for _, family in FAMILIES.items()]


def family_for_model_type(model_type: str, where: str) -> ModelFamily:
    """The family that claims `model_type`, or a one-line error listing the supported families."""
    known = families()
    for family in known:
        if model_type in family.model_types:
            return family
    supported = ", ".join(f.name for f in known)
    raise ConfigError(f"model_type '{model_type}' in {where} is not supported; supported families: {supported}")


def checkpoint_config(spec: str, options: ModelOptions) -> tuple[dict[str, Any], str]:
    """A local folder's or hub id's config.json as a dict, and where it was read (for errors)."""
    folder = Path(spec)
    if folder.is_dir():
        return read_config(folder / "config.json", spec), str(folder / "config.json")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = hf_hub_download(spec, "config.json", revision=options.revision, local_files_only=options.local_files_only)
    except LocalEntryNotFoundError:  # the hub's own words blame the connection, not the missing copy
        raise DataError(not_cached(spec, options)) from None
    except Exception as error:  # unknown repository, no such revision: all one line
        raise EvalsError(f"cannot load IDEFICS checkpoint '{spec}': its config.json cannot be read "
                         f"({first_lines(error, 1)})") from None
    return read_config(Path(path), spec), f"{spec}/config.json"


def first_lines(error: Exception, count: int = 2) -> str:
    """An exception's first lines as one line (the field validators put the reason on the second), else its class."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()][:count]
    return " ".join(lines) or error.__class__.__name__


def not_cached(spec: str, options: ModelOptions) -> str:
    """Why a hub id's files are not here (offline, or local_files_only) and how to bring them."""
    from huggingface_hub import is_offline_mode

    at = f" at revision '{options.revision}'" if options.revision else ""
    if is_offline_mode():
        why = "this machine is offline (HF_HUB_OFFLINE=1)"
    elif options.local_files_only:
        why = "--model-args local_files_only=true forbids downloading"
    else:
        why = "the hub cannot be reached"
    return (f"cannot load IDEFICS checkpoint '{spec}': the hub id is not in the local Hugging Face cache{at} and {why}; "
            f"run `hf download {spec}` (or `huggingface-cli download {spec}`) on a machine with network and copy its "
            f"cache (HF_HOME) here, or copy the model folder here and pass --model FOLDER")


# Fields that size a layer or a table: a value that is not a positive integer cannot build a model, and transformers
# says so (if at all) from deep inside a layer's constructor, without naming config.json.
SIZE_FIELDS = frozenset({"vocab_size", "hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
                         "max_position_embeddings", "embed_dim", "image_size", "patch_size"})


def check_sizes(config: dict[str, Any], path: Path, prefix: str = "") -> None:
    """Each size field of the config and its sub-configs (vision_config, ...) is a positive integer where set."""
    for key, value in config.items():
        if isinstance(value, dict):
            check_sizes(value, path, f"{prefix}{key}.")
        elif key in SIZE_FIELDS and value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise DataError(f"{path}: field '{prefix}{key}' must be a positive integer, got {value!r}")


def read_config(path: Path, spec: str) -> dict[str, Any]:
    if not path.is_file():
        raise EvalsError(f"cannot load IDEFICS checkpoint '{spec}': no config.json in the folder")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not a readable JSON config ({error})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise DataError(f"{path}: no field 'model_type' (which model family is it?)")
    check_sizes(config, path)
    return config


def detect_family(spec: str, options: ModelOptions) -> ModelFamily:
    """The family of a local checkpoint folder or hub id, from its config's `model_type`."""
    config, where = checkpoint_config(spec, options)
    return family_for_model_type(config["model_type"], where)


def idefics_load(checkpoint: str | Path, device: str, options: ModelOptions, name: str | None) -> Model:
    from evals.models.idefics import IdeficsModel

    return IdeficsModel.load(checkpoint, device=device, name=name, options=options)


def idefics2_load(checkpoint: str | Path, device: str, options: ModelOptions, name: str | None) -> Model:
    from evals.models.idefics2 import Idefics2Model

    return Idefics2Model.load(checkpoint, device=device, name=name, options=options)


def idefics3_load(checkpoint: str | Path, device: str, options: ModelOptions, name: str | None) -> Model:
    from evals.models.idefics3 import Idefics3Model

    return Idefics3Model.load(checkpoint, device=device, name=name, options=options)


add_family(ModelFamily("idefics", ("idefics",), ("idefics", "idefics-instruct"), idefics_load,
                       "IDEFICS (Laurençon et al. 2023): Flamingo-style cross-attention; base and instruct",
                       supports=CAPABILITIES))
add_family(ModelFamily("idefics2", ("idefics2",), ("idefics2", "idefics2-chat"), idefics2_load,
                       "IDEFICS2 (Laurençon et al. 2024): native resolution, perceiver, Mistral; base, instruct, chatty",
                       ("do_image_splitting", "longest_edge"), ("generate", "score", "prefix reuse", "device_map")))
add_family(ModelFamily("idefics3", ("idefics3", "smolvlm"), ("idefics3", "idefics3-chat"), idefics3_load,
                       "Idefics3 and SmolVLM (Laurençon et al. 2024; Marafioti et al. 2025): image splitting, pixel shuffle, "
                       "Llama/SmolLM; base and instruct (SmolVLM2: needs torchvision and num2words)",
                       ("do_image_splitting", "longest_edge"), ("generate", "score", "prefix reuse", "device_map")))


def generic_load(checkpoint: str | Path, device: str, options: ModelOptions, name: str | None) -> Model:
    from evals.models.generic import GenericModel

    return GenericModel.load(checkpoint, device=device, name=name, options=options)


# Listed by hand (importing the module would import transformers): evals/models/generic.py ARCHITECTURES.
GENERIC_MODEL_TYPES = ("gemma3", "llava_next", "qwen2_vl", "qwen2_5_vl", "llava_onevision")
add_family(ModelFamily("generic", GENERIC_MODEL_TYPES, ("chat",), generic_load,
                       "Any AutoModelForImageTextToText checkpoint with several images per prompt, through its own chat "
                       "template (tested: Gemma 3, LLaVA-NeXT; Qwen2-VL, Qwen2.5-VL, LLaVA-OneVision need torchvision)",
                       ("demonstrations", "scoring"), ("generate", "score", "prefix reuse", "device_map")))
