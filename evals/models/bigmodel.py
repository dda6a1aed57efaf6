"""Loading one copy of a model spread over several devices (`--model-args device_map=auto`): big-model inference
through accelerate, as transformers documents it.

The device map is computed here, from an empty (meta) model and the plan of evals.placement, and handed to
`from_pretrained` as an explicit mapping of blocks to devices. Never the string "auto": some transformers releases
read `device_map="auto"` under torchrun (WORLD_SIZE set) as a request for tensor parallelism, which would shard every
layer across the node's processes instead of giving each rank its own copy on its own GPUs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from evals.distributed import current_world, processes_per_node
from evals.errors import ConfigError
from evals.models import compat
from evals.models.options import ModelOptions, processor_kwargs
from evals.placement import MemoryLimits, Placement, gib, placement_summary, plan_placement


def empty_model(model_class, checkpoint: str | Path, options: ModelOptions):
    """The model's modules with no memory behind them (meta tensors): enough to size and place its blocks."""
    from accelerate import init_empty_weights

    config = model_class.config_class.from_pretrained(str(checkpoint), **processor_kwargs(options))
    with init_empty_weights():
        return model_class(config)


def weight_bytes(model, dtype) -> int:
    """Bytes of the parameters and buffers in `dtype` (floating ones; others keep their own size)."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * (dtype.itemsize if t.is_floating_point() else t.element_size()) for t in tensors)


def node_gpu_memory(device: str) -> list[int]:
    """Total memory of each GPU this process sees (none for a CPU run)."""
    if not device.startswith("cuda"):
        return []
    import torch

    return [torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count())]


def machine_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def plan_for(empty, device: str, options: ModelOptions, what: str) -> Placement:
    import torch

    if device.startswith("cuda") and device != "cuda":
        raise ConfigError(f"--device {device} with device_map: give --device cuda (each process's GPUs come from "
                          f"--gpus-per-process)")
    size = weight_bytes(empty, getattr(torch, options.dtype))
    limits = MemoryLimits.parse(options.max_memory) if options.max_memory else MemoryLimits()
    world = current_world(device)
    return plan_placement(node_gpu_memory(device), processes_per_node(), world.local_rank, size, f"{what} in {options.dtype}",
                          options.gpus_per_process, limits, machine_memory(), options.offload_folder is not None)


def device_map_for(empty, placement: Placement, options: ModelOptions) -> dict[str, Any]:
    """Whole blocks (a decoder layer is never cut) to devices within the plan's budgets: spread evenly over the GPUs
    (`auto`) or filling them in order (`sequential`)."""
    import torch
    from accelerate import infer_auto_device_map
    from accelerate.utils import get_balanced_memory

    dtype, keep_whole = getattr(torch, options.dtype), compat.no_split_modules(empty)
    memory = dict(placement.budgets)
    if options.device_map == "auto" and len(placement.gpus) > 1:
        memory = get_balanced_memory(empty, max_memory=memory, no_split_module_classes=keep_whole, dtype=dtype)
    return dict(infer_auto_device_map(empty, max_memory=memory, no_split_module_classes=keep_whole, dtype=dtype))


def placement_kwargs(model_class, checkpoint: str | Path, device: str, options: ModelOptions, what: str) -> dict[str, Any]:
    """`from_pretrained` keyword arguments that place the model as planned; the plan is refused before any weights
    load when it cannot work."""
    empty = empty_model(model_class, checkpoint, options)
    placement = plan_for(empty, device, options, f"{what} checkpoint '{checkpoint}'")
    device_map = device_map_for(empty, placement, options)
    if "disk" in device_map.values() and options.offload_folder is None:
        room = sum(placement.budgets.values())
        raise ConfigError(f"{what} checkpoint '{checkpoint}': its blocks do not fit whole in {gib(room)} "
                          f"(max_memory): allow more, or offload the rest to disk (offload_folder=PATH)")
    kwargs: dict[str, Any] = {"device_map": device_map}
    if options.offload_folder is not None:
        kwargs["offload_folder"] = options.offload_folder
    return kwargs


def inputs_device(model, device: str, options: ModelOptions) -> str:
    """`device` for a model loaded whole; for a spread one, where its inputs go."""
    return input_device(model) if options.device_map is not None else device


def input_device(model) -> str:
    """Where a spread model's inputs go: the device of the block holding its input embeddings (a block kept on disk
    or the CPU runs on the CPU)."""
    device_map = getattr(model, "hf_device_map", None)
    if not device_map:  # the plan put every block on one device: transformers then keeps no map
        return str(next(model.parameters()).device)
    embeddings = model.get_input_embeddings()
    name = next(n for n, m in model.named_modules() if m is embeddings)
    owner = max((k for k in device_map if k == "" or name == k or name.startswith(k + ".")), key=len)
    device = device_map[owner]
    return f"cuda:{device}" if isinstance(device, int) else "cpu" if device in ("cpu", "disk") else str(device)


def placement_record(model, device: str) -> dict[str, Any]:
    """The record's provenance: devices in order and blocks per device for a spread model; the device otherwise."""
    device_map = getattr(model, "hf_device_map", None)
    if not device_map or len(device_map) == 1 and "" in device_map:
        return {"devices": [device]}
    return placement_summary(device_map)


def gpus_per_process(device: str, options: ModelOptions) -> int:
    """GPUs each process owns: as given, or, for a model spread over CUDA GPUs, the node's divided among its
    processes (its first one is where the process's collectives run); 1 otherwise."""
    if options.gpus_per_process is not None:
        return options.gpus_per_process
    if options.device_map is None or not device.startswith("cuda"):
        return 1
    import torch

    from evals.placement import plan_node

    if not torch.cuda.is_available():
        return 1  # --device cuda on a machine without it: check_device says so, naming the devices there are
    return plan_node(torch.cuda.device_count(), processes_per_node()).gpus_per_process
