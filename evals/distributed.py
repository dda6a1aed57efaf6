"""Data-parallel evaluation under `torchrun` or `accelerate launch`: which process this is, its strided share
of the queries, and gathering each process's model outputs to rank 0, which alone scores and writes records.

Both launchers set RANK, WORLD_SIZE and LOCAL_RANK; without them the run is one process and nothing here
touches torch.distributed. The process group starts lazily (gloo on CPU, nccl on CUDA) on first use.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from evals.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the launched ones; rank 0 is the one that scores and writes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = "gloo"
    gpus_per_process: int = 1  # the rank's GPUs are local_rank*N .. local_rank*N+N-1 of its node (evals.placement)

    @property
    def first_gpu(self) -> int:
        return self.local_rank * self.gpus_per_process

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1


def current_world(device: str = "cpu", gpus_per_process: int = 1) -> World:
    """The world the launcher describes in the environment (one process when it describes none)."""
    size = env_int("WORLD_SIZE", 1)
    if size == 1:
        return World(gpus_per_process=gpus_per_process)
    rank, local_rank = env_int("RANK", 0), env_int("LOCAL_RANK", 0)
    if not 0 <= rank < size:
        raise ConfigError(f"environment: RANK={rank} is not below WORLD_SIZE={size}")
    return World(rank, size, local_rank, "nccl" if device.startswith("cuda") else "gloo", gpus_per_process)


def processes_per_node() -> int:
    """How many processes share this node (torchrun and accelerate launch set LOCAL_WORLD_SIZE); one without them."""
    count = env_int("LOCAL_WORLD_SIZE", 1)
    if count < 1:
        raise ConfigError(f"environment: LOCAL_WORLD_SIZE={count} is not a positive integer")
    return count


def env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "")
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"environment: {name}={text!r} is not an integer") from None


def local_device(device: str, world: World, spread: bool = False) -> str:
    """`cuda` names this process's own (first) GPU when several processes run; anything else is kept. A model spread
    over the process's GPUs (`spread`: device_map) keeps `cuda`, its GPUs planned by evals.placement."""
    if device == "cuda" and world.parallel and not spread:
        return f"cuda:{world.first_gpu}"
    return device


def check_device(device: str) -> str:
    """`device` if this machine has it, else one line naming the devices it has: before any model loads, rather
    than torch's complaint (or an assertion) from deep inside the first tensor move. `cpu` needs no torch import."""
    if device == "cpu":
        return device
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"--device {device}: not a torch device; this machine has: {', '.join(machine_devices())}") from None
    if parsed.type == "cpu":
        return device
    backend = {"cuda": torch.cuda, "xpu": getattr(torch, "xpu", None), "mps": torch.backends.mps}.get(parsed.type)
    if backend is None or not backend.is_available():
        name = {"cuda": "CUDA", "xpu": "XPU", "mps": "MPS"}.get(parsed.type, f"the '{parsed.type}' device")
        raise ConfigError(f"--device {device}: {name} is not available on this machine "
                          f"(devices: {', '.join(machine_devices())})")
    count = backend.device_count() if hasattr(backend, "device_count") else 1
    if parsed.index is not None and parsed.index >= count:
        raise ConfigError(f"--device {device}: this machine has {count} {parsed.type} device{'s' * (count != 1)} "
                          f"(devices: {', '.join(machine_devices())})")
    return device


def machine_devices() -> list[str]:
    """The devices `--device` can name here: cpu, each CUDA (or XPU) GPU by index, mps where present."""
    import torch

    found = ["cpu"]
    for kind in ("cuda", "xpu"):
        backend = getattr(torch, kind, None)
        if backend is not None and backend.is_available():
            found += [f"{kind}:{i}" for i in range(backend.device_count())]
    if torch.backends.mps.is_available():
        found.append("mps")
    return found


def shard(items: Sequence[T], world: World) -> list[T]:
    """Rank r's share: items r, r + W, r + 2W, ... Every item goes to exactly one rank and none is padded in,
    so gathering the shards counts each item once."""
    return list(items[world.rank :: world.size])


def process_group(world: World):
    """torch.distributed, its default process group started on first use (the launcher's env:// rendezvous)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        if world.backend == "nccl":
            import torch

            torch.cuda.set_device(world.first_gpu)  # nccl object collectives use the current device
        dist.init_process_group(world.backend, rank=world.rank, world_size=world.size)
        atexit.register(close, world)  # a group left open aborts the process at exit (its threads still run)
    return dist


def close(world: World) -> None:
    """Wait for every rank, then end the process group (a no-op when none was started)."""
    import sys

    dist = sys.modules.get("torch.distributed")
    if world.parallel and dist is not None and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def exit_cleanly(world: World) -> None:
    """End a finished data-parallel process at once, after closing its group and flushing its output.

    Every record is written by now; what is left is interpreter teardown, where gloo's threads now and
    then abort a rank ("terminate called without an active exception", about 1 launch in 10 on CPU),
    turning a complete run into a non-zero exit. Skipping teardown keeps the exit status honest.
    """
    if not world.parallel:
        return
    from evals.process import exit_without_teardown

    close(world)
    exit_without_teardown()


def gather(value: T, world: World) -> list[T] | None:
    """Every rank's `value`, in rank order, on rank 0; None on the other ranks."""
    if not world.parallel:
        return [value]
    dist = process_group(world)
    received: list[Any] | None = [None] * world.size if world.main else None
    dist.gather_object(value, received, dst=0)
    return received


def from_main(value: T, world: World) -> T:
    """Rank 0's `value` on every rank (the others pass anything, e.g. None)."""
    if not world.parallel:
        return value
    dist = process_group(world)
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def first_problem(problem: str | None, world: World) -> str | None:
    """The first rank's problem (None: none), in rank order, on every rank: a check that can fail on one node alone
    (its own files) then stops every rank with the same line, rather than leaving the others waiting on a dead peer."""
    if not world.parallel:
        return problem
    found = gather(problem, world)
    return from_main(next((p for p in found if p), None) if found is not None else None, world)


def first_differing(value: str, world: World) -> tuple[int, str, str] | None:
    """The first rank whose `value` (a digest) differs from rank 0's, with its host name and rank 0's, on every rank;
    None when all agree. What each node computed from its own files (data, feature cache) is checked this way."""
    if not world.parallel:
        return None
    import socket

    found = gather((value, socket.gethostname()), world)
    differing = None
    if found is not None:
        rank = next((r for r, (v, _) in enumerate(found) if v != found[0][0]), None)
        differing = None if rank is None else (rank, found[rank][1], found[0][1])
    return from_main(differing, world)


def barrier(world: World) -> None:
    if world.parallel:
        process_group(world).barrier()


@contextmanager
def main_first(world: World) -> Iterator[None]:
    """Rank 0 runs the block first, then the first process of each other node (LOCAL_RANK 0), then the rest: rank 0
    fills the caches (RICES features) that the others read; where a node does not share rank 0's cache folder, its
    first process fills the node's own, once, rather than every process of the node computing the same features."""
    turn = 0 if world.main else 1 if world.local_rank == 0 else 2
    for step in range(3):
        if step == turn:
            yield
        if world.parallel and step < 2:
            barrier(world)
