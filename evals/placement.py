"""Where one copy of a model lives when it is bigger than a GPU: planning, as pure functions of numbers.

Data parallel times model parallel: each launched process (rank) owns GPUS_PER_PROCESS GPUs of its node, rank r
(its LOCAL_RANK) the ones numbered r*N .. r*N+N-1, and spreads its copy of the model over them (big-model inference:
whole blocks per device, run one after the other). Planning is separate from loading so that an impossible
combination (more processes than GPUs, GPUs that do not divide, a model that cannot fit) is one line with the
arithmetic before any weights load, and so that it can be tested on a machine without GPUs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from evals.errors import ConfigError

# Share of a GPU's memory the weights may take when no max_memory is given: the rest holds activations, the
# key/value cache of generation and the CUDA context (IDEFICS-80B's 4-shot batches of 8 need a few GiB per GPU).
DEFAULT_WEIGHT_SHARE = 0.9
UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
         "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B?)\s*$", re.IGNORECASE)
DEVICE_MAPS = ("auto", "sequential")  # auto: balanced over the process's GPUs; sequential: fill GPU 0 first


def parse_size(text: str, what: str = "max_memory") -> int:
    """Bytes from `70GiB`, `500MB`, `1.5GB` or a plain byte count (units as accelerate and the hub write them)."""
    match = SIZE.match(text)
    if not match or match.group(2).upper() not in UNITS:
        raise ConfigError(f"--model-args {what}: '{text}' is not a size (e.g. 70GiB, 500MB, or bytes)")
    return int(float(match.group(1)) * UNITS[match.group(2).upper()])


def gib(size: float) -> str:
    """A size as people read it: GiB from one GiB up, MiB below."""
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"


@dataclass(frozen=True)
class MemoryLimits:
    """`--model-args max_memory=`: one size for each of the process's GPUs (`70GiB`), or sizes by device
    (`0:70GiB;1:60GiB;cpu:200GiB`), GPUs counted within the process's own (0 .. N-1), so one command line serves
    every rank. A device it does not name gets none of the model, except that a single size leaves the CPU out."""

    each_gpu: int | None = None
    gpus: tuple[tuple[int, int], ...] = ()  # (position within the process's GPUs, bytes)
    cpu: int | None = None

    @classmethod
    def parse(cls, text: str) -> MemoryLimits:
        if ":" not in text:
            return cls(each_gpu=parse_size(text))
        gpus, cpu = {}, None
        for part in filter(None, (p.strip() for p in text.split(";"))):
            key, _, size = part.partition(":")
            if key.strip().lower() == "cpu":
                cpu = parse_size(size)
            elif key.strip().isdigit() and key.strip().isascii():
                gpus[int(key)] = parse_size(size)
            else:
                raise ConfigError(f"--model-args max_memory: '{part}' names no device (use N:SIZE for the process's "
                                  f"N-th GPU, or cpu:SIZE; parts separated by ';')")
        return cls(gpus=tuple(sorted(gpus.items())), cpu=cpu)


@dataclass(frozen=True)
class NodePlan:
    """Which GPUs of a node each local rank owns."""

    gpus_per_process: int
    ranks: tuple[tuple[int, ...], ...]

    def gpus_of(self, local_rank: int) -> tuple[int, ...]:
        return self.ranks[local_rank]


def plan_node(gpu_count: int, processes: int, gpus_per_process: int | None = None) -> NodePlan:
    """GPUs r*N .. r*N+N-1 for local rank r; N defaults to the node's GPUs divided among its processes."""
    if processes < 1:
        raise ConfigError(f"{processes} processes per node: at least 1 is needed")
    if gpu_count < processes:
        raise ConfigError(f"{processes} process{'es' * (processes != 1)} on a node with {gpu_count} "
                          f"GPU{'s' * (gpu_count != 1)}: each process "
                          f"needs at least one GPU (start at most {gpu_count} per node)")
    if gpus_per_process is None:
        if gpu_count % processes:
            raise ConfigError(f"{gpu_count} GPUs do not divide among {processes} processes ({gpu_count} / {processes} is "
                              f"not whole): give --gpus-per-process, or start a number of processes that divides {gpu_count}")
        gpus_per_process = gpu_count // processes
    if gpus_per_process < 1:
        raise ConfigError(f"--gpus-per-process {gpus_per_process}: at least 1")
    if processes * gpus_per_process > gpu_count:
        raise ConfigError(f"{processes} processes x {gpus_per_process} GPUs = {processes * gpus_per_process} GPUs, but this "
                          f"node has {gpu_count}")
    n = gpus_per_process
    return NodePlan(n, tuple(tuple(range(r * n, r * n + n)) for r in range(processes)))


def gpu_budgets(gpus: Sequence[int], gpu_memory: Mapping[int, int], limits: MemoryLimits) -> dict[int, int]:
    """Bytes of weights each of a process's GPUs (absolute indexes) may hold: its limit, or a share of its memory."""
    if limits.gpus:
        named = dict(limits.gpus)
        beyond = [p for p in named if p >= len(gpus)]
        if beyond:
            raise ConfigError(f"--model-args max_memory names GPU {beyond[0]} of the process, but each process has "
                              f"{len(gpus)} GPU{'s' * (len(gpus) != 1)} (0 .. {len(gpus) - 1})")
        return {gpus[p]: size for p, size in named.items()}
    if limits.each_gpu is not None:
        return {g: limits.each_gpu for g in gpus}
    return {g: int(gpu_memory[g] * DEFAULT_WEIGHT_SHARE) for g in gpus}


def process_budgets(gpus: Sequence[int], gpu_memory: Mapping[int, int], limits: MemoryLimits,
                    cpu_memory: int) -> dict[int | str, int]:
    """The max_memory map of one process for accelerate: its GPUs, and the CPU where allowed (disk, where offloading,
    takes whatever is left). Without GPUs (--device cpu) the CPU holds what it may (its limit, else a share of the
    machine's memory)."""
    if not gpus and limits.gpus:
        raise ConfigError(f"--model-args max_memory names GPU {limits.gpus[0][0]}, but this process has no GPUs "
                          f"(--device cpu): give cpu:SIZE")
    budgets: dict[int | str, int] = dict(gpu_budgets(gpus, gpu_memory, limits)) if gpus else {}
    if not gpus:
        budgets["cpu"] = limits.cpu if limits.cpu is not None else limits.each_gpu if limits.each_gpu is not None \
            else int(cpu_memory * DEFAULT_WEIGHT_SHARE)
    elif limits.cpu is not None:
        budgets["cpu"] = limits.cpu
    return budgets


def check_fits(model_bytes: int, budgets: Mapping[int | str, int], offload: bool, what: str) -> None:
    """One line with the arithmetic when the weights cannot fit the devices a process may use (with disk offload,
    bounded by the folder's free space only, they always can)."""
    if offload:
        return
    room = sum(budgets.values())
    if model_bytes <= room:
        return
    parts = " + ".join(f"{'GPU ' + str(k) if isinstance(k, int) else k} {gib(v)}" for k, v in budgets.items())
    raise ConfigError(f"{what} needs {gib(model_bytes)} of weights, but each process may use {parts} = {gib(room)}: "
                      f"give each process more GPUs (--gpus-per-process), allow CPU memory (max_memory=...;cpu:SIZE) "
                      f"or offload to disk (offload_folder=PATH)")


@dataclass(frozen=True)
class Placement:
    """One rank's share of a node and the budgets its copy of the model is spread within."""

    gpus: tuple[int, ...]
    budgets: dict[int | str, int]
    offload: bool = False  # blocks beyond the budgets go to disk


def plan_placement(gpu_memory: Sequence[int], processes: int, local_rank: int, model_bytes: int, what: str,
                   gpus_per_process: int | None = None, limits: MemoryLimits = MemoryLimits(),
                   cpu_memory: int = 0, offload: bool = False) -> Placement:
    """The whole plan for one rank: given a node's GPUs (their memory in bytes; none for a CPU run), the processes on
    the node, the model's size in bytes, which GPUs this rank gets and what each may hold; refused in one line if
    the combination is impossible. Without GPUs, `gpus_per_process` has nothing to divide and the machine's memory
    (`cpu_memory`) is shared among the node's processes."""
    if not 0 <= local_rank < processes:
        raise ConfigError(f"LOCAL_RANK={local_rank} is not below the node's {processes} processes")
    gpus = plan_node(len(gpu_memory), processes, gpus_per_process).gpus_of(local_rank) if gpu_memory else ()
    cpu_share = cpu_memory // processes  # each process on the node holds its own copy
    budgets = process_budgets(gpus, dict(enumerate(gpu_memory)), limits, cpu_share)
    check_fits(model_bytes, budgets, offload, what)
    return Placement(gpus, budgets, offload)


def placement_summary(device_map: Mapping[str, int | str]) -> dict[str, object]:
    """What a record keeps of a placement (provenance): the devices in order of use and the blocks each holds."""
    blocks: dict[str, int] = {}
    for device in device_map.values():
        name = f"cuda:{device}" if isinstance(device, int) else str(device)
        blocks[name] = blocks.get(name, 0) + 1
    return {"devices": list(blocks), "blocks_per_device": blocks}
