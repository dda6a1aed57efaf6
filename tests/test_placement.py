"""Placement planning (evals.placement) as pure functions: which GPUs each rank of a node gets, what each may hold,
and one line with the arithmetic for every impossible combination, before any weights load."""

from __future__ import annotations

import pytest

from evals.errors import ConfigError
from evals.placement import MemoryLimits, gib, parse_size, placement_summary, plan_node, plan_placement

GIB = 2**30
H100 = 80 * GIB
# IDEFICS-80B: about 80 billion parameters; bfloat16 stores each in 2 bytes.
IDEFICS_80B_BF16 = 80 * 10**9 * 2


@pytest.mark.parametrize(("gpus", "processes", "per_process", "expected"), [
    (8, 2, None, ((0, 1, 2, 3), (4, 5, 6, 7))),
    (8, 1, None, ((0, 1, 2, 3, 4, 5, 6, 7),)),
    (4, 4, None, ((0,), (1,), (2,), (3,))),
    (8, 2, 2, ((0, 1), (2, 3))),  # fewer than the node has: the rest stay free
    (8, 2, 4, ((0, 1, 2, 3), (4, 5, 6, 7))),
])
def test_each_rank_gets_consecutive_gpus(gpus, processes, per_process, expected):
    plan = plan_node(gpus, processes, per_process)
    assert plan.ranks == expected
    assert plan.gpus_per_process == len(expected[0])
    assert plan.gpus_of(processes - 1) == expected[-1]


@pytest.mark.parametrize(("gpus", "processes", "per_process", "message"), [
    (2, 4, None, "4 processes on a node with 2 GPUs: each process needs at least one GPU (start at most 2 per node)"),
    (0, 1, None, "1 process on a node with 0 GPUs"),
    (6, 4, None, "6 GPUs do not divide among 4 processes (6 / 4 is not whole)"),
    (8, 2, 5, "2 processes x 5 GPUs = 10 GPUs, but this node has 8"),
    (8, 2, 0, "--gpus-per-process 0: at least 1"),
    (8, 0, None, "0 processes per node"),
])
def test_impossible_node_plans_are_one_line_with_the_arithmetic(gpus, processes, per_process, message):
    with pytest.raises(ConfigError) as error:
        plan_node(gpus, processes, per_process)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_idefics_80b_on_8_gpus_as_2_processes_of_4():
    """README's 8 x 80 GB line: each rank's 4 GPUs may hold 4 x 72 GiB (90% each) = 288 GiB >= 149 GiB of weights."""
    ranks = [plan_placement([H100] * 8, 2, r, IDEFICS_80B_BF16, "idefics-80b") for r in (0, 1)]
    assert [p.gpus for p in ranks] == [(0, 1, 2, 3), (4, 5, 6, 7)]
    assert ranks[1].budgets == {g: int(H100 * 0.9) for g in (4, 5, 6, 7)}


def test_idefics_80b_on_4_gpus_as_1_process():
    placement = plan_placement([H100] * 4, 1, 0, IDEFICS_80B_BF16, "idefics-80b")
    assert placement.gpus == (0, 1, 2, 3) and sum(placement.budgets.values()) == 4 * int(H100 * 0.9)


def test_a_model_that_cannot_fit_is_refused_with_the_arithmetic():
    with pytest.raises(ConfigError) as error:
        plan_placement([H100] * 8, 4, 0, IDEFICS_80B_BF16, "idefics-80b in bfloat16")
    assert str(error.value).startswith(
        "idefics-80b in bfloat16 needs 149.0 GiB of weights, but each process may use GPU 0 72.0 GiB + GPU 1 72.0 GiB "
        "= 144.0 GiB: give each process more GPUs (--gpus-per-process)")


@pytest.mark.parametrize(("limits", "offload", "fits"), [
    ("0:70GiB;1:70GiB;cpu:20GiB", False, True),  # 160 GiB: the CPU takes what the two GPUs cannot
    ("0:70GiB;1:70GiB", False, False),  # 140 GiB
    ("70GiB", False, False),
    ("70GiB", True, True),  # disk offload takes the rest
])
def test_cpu_memory_and_disk_offload_make_room(limits, offload, fits):
    def plan():
        return plan_placement([H100] * 2, 1, 0, IDEFICS_80B_BF16, "m", limits=MemoryLimits.parse(limits), offload=offload)

    if fits:
        assert plan().gpus == (0, 1)
    else:
        with pytest.raises(ConfigError, match="needs 149.0 GiB of weights"):
            plan()


def test_max_memory_names_gpus_within_the_process():
    """One command line for every rank: `0:` is each rank's first GPU (rank 1's GPU 2 when ranks own two each)."""
    placement = plan_placement([H100] * 4, 2, 1, 10 * GIB, "m", limits=MemoryLimits.parse("0:10GiB;1:20GiB;cpu:5GiB"))
    assert placement.budgets == {2: 10 * GIB, 3: 20 * GIB, "cpu": 5 * GIB}
    assert plan_placement([H100] * 4, 2, 1, 10 * GIB, "m", limits=MemoryLimits.parse("30GiB")).budgets == {2: 30 * GIB, 3: 30 * GIB}


def test_without_gpus_the_cpu_holds_the_model_and_processes_share_it():
    placement = plan_placement([], 2, 1, 10 * GIB, "m", cpu_memory=64 * GIB)
    assert placement.gpus == () and placement.budgets == {"cpu": int(32 * GIB * 0.9)}
    assert plan_placement([], 1, 0, 10 * GIB, "m", limits=MemoryLimits.parse("cpu:3MB"), offload=True).budgets["cpu"] == 3 * 10**6
    with pytest.raises(ConfigError, match="needs 10.0 GiB of weights, but each process may use cpu 4.0 GiB"):
        plan_placement([], 1, 0, 10 * GIB, "m", limits=MemoryLimits.parse("cpu:4GiB"))


@pytest.mark.parametrize(("text", "message"), [
    ("70 parsecs", "'70 parsecs' is not a size"),
    ("gpu0:1GB", "'gpu0:1GB' names no device"),
    ("0:lots", "'lots' is not a size"),
    ("²:1GB", "'²:1GB' names no device"),
])
def test_malformed_max_memory_is_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        MemoryLimits.parse(text)


def test_max_memory_beyond_the_process_gpus_is_refused():
    with pytest.raises(ConfigError, match="names GPU 2 of the process, but each process has 2 GPUs"):
        plan_placement([H100] * 4, 2, 0, GIB, "m", limits=MemoryLimits.parse("2:10GiB"))


def test_max_memory_for_gpus_on_a_cpu_run_is_refused():
    with pytest.raises(ConfigError, match=r"names GPU 0, but this process has no GPUs \(--device cpu\): give cpu:SIZE"):
        plan_placement([], 1, 0, GIB, "m", limits=MemoryLimits.parse("0:10GiB"))


def test_local_rank_beyond_the_node_is_refused():
    with pytest.raises(ConfigError, match="LOCAL_RANK=2 is not below the node's 2 processes"):
        plan_placement([H100] * 4, 2, 2, GIB, "m")


@pytest.mark.parametrize(("text", "size"), [("70GiB", 70 * GIB), ("500MB", 500 * 10**6), ("1.5GB", 1_500_000_000),
                                            ("1024", 1024), ("3mib", 3 * 2**20), ("2 TB", 2 * 10**12)])
def test_sizes_read_as_accelerate_and_the_hub_write_them(text, size):
    assert parse_size(text) == size


def test_the_record_keeps_devices_in_order_and_blocks_per_device():
    device_map = {"model.embed_tokens": 0, "model.layers.0": 0, "model.layers.1": 1, "lm_head": "cpu", "model.norm": "disk"}
    assert placement_summary(device_map) == {"devices": ["cuda:0", "cuda:1", "cpu", "disk"],
                                             "blocks_per_device": {"cuda:0": 2, "cuda:1": 1, "cpu": 1, "disk": 1}}
    assert gib(IDEFICS_80B_BF16) == "149.0 GiB"
