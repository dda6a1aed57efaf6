"""Model loading options (`--model-args key=value,...`): dtype, attention, 4-bit, revision, placement over devices,
family-specific ones.

Parsed into a typed `ModelOptions`, checked before any weights load (a missing optional package says what to
install), turned into `from_pretrained` keyword arguments, and recorded with every result.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from evals.errors import ConfigError

DTYPE_ALIASES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
                 "float16": "float16", "fp16": "float16", "half": "float16"}
ATTENTION = ("eager", "sdpa", "flash_attention_2")
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
# Options that say where the weights came from or where they sit, not what they compute: recorded, not compared.
PROVENANCE_OPTIONS = frozenset({"local_files_only", "device_map", "max_memory", "offload_folder"})
# Options compared through a Protocol field of their own (dtype), so a change is reported once, under that field.
OWN_FIELD_OPTIONS = frozenset({"dtype"})
NOT_COMPARED_OPTIONS = PROVENANCE_OPTIONS | OWN_FIELD_OPTIONS


@dataclass(frozen=True)
class ModelOptions:
    """How to load a checkpoint. None: the family's (or transformers') own default, left unset."""

    dtype: str = "float32"
    attn_implementation: str | None = None  # None: transformers' default (sdpa where available)
    load_in_4bit: bool = False
    revision: str | None = None
    local_files_only: bool = False
    trust_remote_code: bool = False
    do_image_splitting: bool | None = None  # IDEFICS2: each image also as 4 crops (None: the processor's setting)
    longest_edge: int | None = None  # IDEFICS2: resize so the longest image side is at most this (None: the processor's)
    demonstrations: str | None = None  # generic family: shots as earlier chat turns or in one user turn (None: per model)
    scoring: str | None = None  # generic family: prefix (cache reuse) or naive candidate scoring (None: per model)
    device_map: str | None = None  # auto | sequential: one copy spread over the process's GPUs (or CPU and disk)
    max_memory: str | None = None  # with device_map: the weights each device may hold (evals.placement.MemoryLimits)
    offload_folder: str | None = None  # with device_map: blocks that fit nowhere else are kept here and read per use
    # Not a --model-args key: `evals run --gpus-per-process` (None: the node's GPUs divided among its processes).
    gpus_per_process: int | None = None

    def recorded(self) -> dict[str, Any]:
        """What a result records: every option set away from its default, so a run with the defaults records {} as
        records written before these options existed do. dtype too (`dtype=bf16` is what the user passed, and where
        they look for it), although the Protocol's own dtype field is what the comparisons read."""
        defaults = ModelOptions()
        return {k: v for k, v in asdict(self).items() if v != getattr(defaults, k) and k in CONVERTERS}

    def set_keys(self) -> list[str]:
        """The options set beyond dtype, which every model takes."""
        return sorted(k for k in self.recorded() if k not in OWN_FIELD_OPTIONS)




def to_bool(key: str, text: str) -> bool:
    if text.lower() in TRUE:
        return True
    if text.lower() in FALSE:
        return False
    raise ConfigError(f"--model-args {key}: expected true or false, got '{text}'")


def to_dtype(key: str, text: str) -> str:
    if text.lower() not in DTYPE_ALIASES:
        raise ConfigError(f"--model-args {key}: unknown dtype '{text}' (choose from {', '.join(DTYPE_ALIASES)})")
    return DTYPE_ALIASES[text.lower()]


def to_attention(key: str, text: str) -> str:
    if text not in ATTENTION:
        raise ConfigError(f"--model-args {key}: unknown attention '{text}' (choose from {', '.join(ATTENTION)})")
    return text


def to_positive_int(key: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"--model-args {key}: expected a positive integer, got '{text}'")
    return int(text)


def to_choice(*choices: str):
    def convert(key: str, text: str) -> str:
        if text not in choices:
            raise ConfigError(f"--model-args {key}: unknown value '{text}' (choose from {', '.join(choices)})")
        return text
    return convert


def to_device_map(key: str, text: str) -> str:
    from evals.placement import DEVICE_MAPS

    if text not in DEVICE_MAPS:
        raise ConfigError(f"--model-args {key}: unknown placement '{text}' (choose from {', '.join(DEVICE_MAPS)})")
    return text


def to_memory_limits(key: str, text: str) -> str:
    """Kept as written (it is recorded so); parsed here only to refuse a malformed one before anything loads."""
    from evals.placement import MemoryLimits

    MemoryLimits.parse(text)
    return text


CONVERTERS = {
    "dtype": to_dtype, "attn_implementation": to_attention, "load_in_4bit": to_bool, "revision": lambda k, t: t,
    "local_files_only": to_bool, "trust_remote_code": to_bool, "do_image_splitting": to_bool, "longest_edge": to_positive_int,
    "demonstrations": to_choice("turns", "one_turn"), "scoring": to_choice("prefix", "naive"),
    "device_map": to_device_map, "max_memory": to_memory_limits, "offload_folder": lambda k, t: t,
}
OPTION_NAMES = tuple(CONVERTERS)


def split_pairs(text: str) -> dict[str, str]:
    """`key=value,key=value` as a dict; a malformed pair or a repeated key is a one-line error."""
    pairs: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"--model-args takes key=value pairs separated by commas, got '{part}'")
        if key.strip() in pairs:
            raise ConfigError(f"--model-args gives '{key.strip()}' twice")
        pairs[key.strip()] = value.strip()
    return pairs


def parse_model_args(values: str | Mapping[str, Any], dtype: str | None = None) -> ModelOptions:
    """Options from `key=value,...` text or a mapping (a sweep file's table); `dtype` is the `--dtype` alias."""
    pairs = split_pairs(values) if isinstance(values, str) else {k: str(v).lower() if isinstance(v, bool) else str(v)
                                                                  for k, v in values.items()}
    unknown = sorted(set(pairs) - set(CONVERTERS))
    if unknown:
        raise ConfigError(f"--model-args: unknown key '{unknown[0]}' (valid keys: {', '.join(OPTION_NAMES)})")
    options = ModelOptions(**{k: CONVERTERS[k](k, v) for k, v in pairs.items()})
    check_placement_options(options)
    if dtype is not None:
        alias = to_dtype("dtype", dtype)
        if "dtype" in pairs and options.dtype != alias:
            raise ConfigError(f"--dtype {dtype} and --model-args dtype={pairs['dtype']} disagree: give one")
        options = replace(options, dtype=alias)
    return options


def check_placement_options(options: ModelOptions) -> None:
    """max_memory and offload_folder only mean something for a model spread by device_map; 4-bit weights are placed
    whole on --device at load, so they cannot be spread as well."""
    if options.device_map is None:
        given = [k for k in ("max_memory", "offload_folder") if getattr(options, k) is not None]
        if given:
            raise ConfigError(f"--model-args {given[0]} needs device_map=auto (or sequential) to place the model by")
    elif options.load_in_4bit:
        raise ConfigError("--model-args load_in_4bit=true places the whole model on --device: drop device_map, or load_in_4bit")


def check_family_options(options: ModelOptions, family: str, accepted: frozenset[str]) -> None:
    """Family-specific options (do_image_splitting, longest_edge, demonstrations, scoring) are refused by families that have no such knob."""
    family_only = {"do_image_splitting", "longest_edge", "demonstrations", "scoring"}
    refused = sorted(set(options.set_keys()) & family_only - accepted)
    if refused:
        raise ConfigError(f"--model-args {refused[0]} does not apply to {family} models")


def from_pretrained_kwargs(options: ModelOptions, device: str) -> dict[str, Any]:
    """Keyword arguments for a model's `from_pretrained`; a missing optional package or CUDA is a clear error."""
    import torch

    kwargs: dict[str, Any] = {"dtype": getattr(torch, options.dtype), "revision": options.revision,
                              "local_files_only": options.local_files_only, "trust_remote_code": options.trust_remote_code}
    if options.attn_implementation is not None:
        if options.attn_implementation == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
            raise ConfigError("attn_implementation=flash_attention_2 needs the flash-attn package: pip install flash-attn "
                              "(CUDA only); or use attn_implementation=sdpa")
        kwargs["attn_implementation"] = options.attn_implementation
    if options.load_in_4bit:
        kwargs.update(quantization_kwargs(options, device))
    if options.device_map is not None and importlib.util.find_spec("accelerate") is None:
        raise ConfigError("device_map needs the accelerate package: pip install accelerate")
    return kwargs


def quantization_kwargs(options: ModelOptions, device: str) -> dict[str, Any]:
    """4-bit NF4 weights through bitsandbytes, placed on `device` at load (a quantized model cannot be moved later)."""
    import torch

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("load_in_4bit=true needs the bitsandbytes package: pip install bitsandbytes")
    if not device.startswith("cuda") or not torch.cuda.is_available():
        raise ConfigError(f"load_in_4bit=true needs a CUDA device (--device cuda), not '{device}'")
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=getattr(torch, options.dtype))
    return {"quantization_config": config, "device_map": {"": device}}


def processor_kwargs(options: ModelOptions) -> dict[str, Any]:
    """Keyword arguments for a processor's `from_pretrained` (where to read it from)."""
    return {"revision": options.revision, "local_files_only": options.local_files_only,
            "trust_remote_code": options.trust_remote_code}


def model_args(model: object) -> dict[str, Any]:
    """What a result records of how `model` was loaded (results.schema.Protocol.model_args): its options away from
    their defaults, or {} for a model without loading options (the scripted test model)."""
    options = getattr(model, "options", None)
    return options.recorded() if isinstance(options, ModelOptions) else {}
