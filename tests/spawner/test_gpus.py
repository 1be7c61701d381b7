"""GPUs: parsing nvidia-smi, detecting without it, type matching, and allocation."""

from __future__ import annotations

import logging
import stat
import sys

import pytest
from mlfactory.spawner.gpus import (
    Gpu,
    GpuAllocator,
    NoGpuAvailable,
    cuda_env,
    detect_gpus,
    gpu_type_matches,
    normalise_gpu_type,
    parse_nvidia_smi,
)

SMI_OUTPUT = """
0, GPU-11111111-aaaa-bbbb-cccc-000000000000, Tesla T4, 15360

  1 , GPU-22222222-aaaa-bbbb-cccc-000000000000 , Tesla T4 , 15360
2, GPU-33333333-aaaa-bbbb-cccc-000000000000, NVIDIA A100-SXM4-40GB, 40960
"""

T4_0 = Gpu(0, "GPU-11111111-aaaa-bbbb-cccc-000000000000", "Tesla T4", 15360)
T4_1 = Gpu(1, "GPU-22222222-aaaa-bbbb-cccc-000000000000", "Tesla T4", 15360)
A100 = Gpu(2, "GPU-33333333-aaaa-bbbb-cccc-000000000000", "NVIDIA A100-SXM4-40GB", 40960)


# -- parsing -----------------------------------------------------------------------------


def test_parse_tolerates_blank_lines_and_whitespace():
    assert parse_nvidia_smi(SMI_OUTPUT) == [T4_0, T4_1, A100]


def test_parse_empty_output():
    assert parse_nvidia_smi("") == []
    assert parse_nvidia_smi("\n  \n") == []


def test_parse_keeps_a_comma_inside_the_name():
    [gpu] = parse_nvidia_smi("0, GPU-x, Odd, Name, 100\n")
    assert gpu == Gpu(0, "GPU-x", "Odd, Name", 100)


@pytest.mark.parametrize(
    "line",
    [
        "0, GPU-x, Tesla T4",  # a column short
        "zero, GPU-x, Tesla T4, 15360",  # index not a number
        "0, GPU-x, Tesla T4, [N/A]",  # memory not a number
        "0, , Tesla T4, 15360",  # no uuid
        "No devices were found",
    ],
)
def test_parse_malformed_line_names_it(line):
    with pytest.raises(ValueError) as info:
        parse_nvidia_smi(f"0, GPU-a, Tesla T4, 15360\n{line}\n")
    assert "line 2" in str(info.value)
    assert repr(line) in str(info.value)


# -- detection ---------------------------------------------------------------------------


def fake_smi(tmp_path, body: str) -> str:
    """An executable standing in for nvidia-smi."""
    path = tmp_path / "nvidia-smi"
    path.write_text(f"#!{sys.executable}\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


async def test_detect_runs_the_query(tmp_path):
    args_file = tmp_path / "args"
    smi = fake_smi(
        tmp_path,
        f"import sys; open({str(args_file)!r}, 'w').write(' '.join(sys.argv[1:]))\n"
        f"print({SMI_OUTPUT!r})",
    )
    assert await detect_gpus(smi) == [T4_0, T4_1, A100]
    assert args_file.read_text() == (
        "--query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits"
    )


async def test_detect_without_nvidia_smi_is_empty(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="mlfactory.spawner.gpus"):
        assert await detect_gpus(str(tmp_path / "missing-nvidia-smi")) == []
    assert "cannot run" in caplog.text


async def test_detect_failing_nvidia_smi_is_empty(tmp_path, caplog):
    smi = fake_smi(
        tmp_path,
        "import sys; sys.stderr.write('NVIDIA-SMI has failed because it could not "
        "communicate with the NVIDIA driver'); sys.exit(9)",
    )
    assert await detect_gpus(smi) == []
    assert "exited with 9" in caplog.text
    assert "could not communicate with the NVIDIA driver" in caplog.text


async def test_detect_hanging_nvidia_smi_is_empty(tmp_path, caplog):
    smi = fake_smi(tmp_path, "import time; time.sleep(30)")
    assert await detect_gpus(smi, timeout=0.5) == []
    assert "did not answer within 0.5s" in caplog.text


async def test_detect_garbled_output_raises(tmp_path):
    smi = fake_smi(tmp_path, "print('garbage')")
    with pytest.raises(ValueError, match="line 1"):
        await detect_gpus(smi)


# -- types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("nvidia-tesla-t4", "t4"),
        ("Tesla T4", "t4"),
        ("T4", "t4"),
        ("NVIDIA A100-SXM4-40GB", "a100sxm440gb"),
        ("nvidia-a100", "a100"),
        ("NVIDIA GeForce RTX 4090", "geforcertx4090"),
        ("", ""),
    ],
)
def test_normalise_gpu_type(raw, normalised):
    assert normalise_gpu_type(raw) == normalised


@pytest.mark.parametrize(
    ("wanted", "name"),
    [
        ("nvidia-tesla-t4", "Tesla T4"),
        ("t4", "Tesla T4"),
        ("a100", "NVIDIA A100-SXM4-40GB"),
        ("nvidia-a100", "NVIDIA A100-SXM4-40GB"),
        ("A100-SXM4", "NVIDIA A100-SXM4-40GB"),
        ("a100sxm", "NVIDIA A100-SXM4-40GB"),
        ("h100", "NVIDIA H100 80GB HBM3"),
        ("rtx-4090", "NVIDIA GeForce RTX 4090"),
        ("4090", "NVIDIA GeForce RTX 4090"),
    ],
)
def test_gpu_type_matches(wanted, name):
    assert gpu_type_matches(wanted, name)


@pytest.mark.parametrize(
    ("wanted", "name"),
    [
        ("a10", "NVIDIA A100-SXM4-40GB"),  # a different GPU, though "a10" is in "a100"
        ("l4", "NVIDIA L40S"),
        ("t4", "NVIDIA A100-SXM4-40GB"),
        ("100", "NVIDIA A100-SXM4-40GB"),  # starts inside a word
        ("a100-80gb", "NVIDIA A100-SXM4-40GB"),
        ("nvidia", "NVIDIA A100-SXM4-40GB"),  # nothing left to match
        ("", "Tesla T4"),
    ],
)
def test_gpu_type_does_not_match(wanted, name):
    assert not gpu_type_matches(wanted, name)


# -- environment -------------------------------------------------------------------------


def test_cuda_env_lists_the_devices():
    assert cuda_env(("GPU-a", "GPU-b")) == {
        "CUDA_VISIBLE_DEVICES": "GPU-a,GPU-b",
        "NVIDIA_VISIBLE_DEVICES": "GPU-a,GPU-b",
    }


def test_cuda_env_without_gpus_hides_all():
    # An empty value hides every device; leaving it unset would show them all.
    assert cuda_env(()) == {"CUDA_VISIBLE_DEVICES": "", "NVIDIA_VISIBLE_DEVICES": ""}


# -- allocation --------------------------------------------------------------------------


@pytest.fixture
def allocator() -> GpuAllocator:
    return GpuAllocator([A100, T4_1, T4_0])


def test_allocate_lowest_index_first_and_distinct(allocator):
    assert allocator.allocate("alice", 1) == (T4_0.uuid,)
    assert allocator.allocate("bob", 2) == (T4_1.uuid, A100.uuid)
    assert allocator.in_use() == {"alice": (T4_0.uuid,), "bob": (T4_1.uuid, A100.uuid)}


def test_allocate_by_type(allocator):
    assert allocator.allocate("alice", 1, "nvidia-a100") == (A100.uuid,)
    assert allocator.allocate("bob", 2, "nvidia-tesla-t4") == (T4_0.uuid, T4_1.uuid)


def test_allocate_is_idempotent_for_the_same_key(allocator):
    first = allocator.allocate("alice", 2, "t4")
    assert allocator.allocate("alice", 2, "t4") == first
    assert allocator.allocate("alice", 2) == first
    assert allocator.in_use() == {"alice": first}


def test_allocate_a_different_count_for_a_holding_key_is_refused(allocator):
    allocator.allocate("alice", 1)
    with pytest.raises(ValueError, match="alice already holds 1 GPU"):
        allocator.allocate("alice", 2)
    with pytest.raises(ValueError, match="already holds"):
        allocator.allocate("alice", 1, "a100")  # holds a T4


def test_allocate_zero_holds_nothing(allocator):
    assert allocator.allocate("alice", 0) == ()
    assert allocator.in_use() == {}


def test_allocate_negative_count_is_a_bug(allocator):
    with pytest.raises(ValueError):
        allocator.allocate("alice", -1)


def test_never_hands_a_device_to_two_keys(allocator):
    handed = [u for key in ("a", "b", "c") for u in allocator.allocate(key, 1)]
    assert sorted(handed) == sorted(g.uuid for g in (T4_0, T4_1, A100))
    with pytest.raises(NoGpuAvailable):
        allocator.allocate("d", 1)


def test_all_of_a_type_in_use(allocator):
    allocator.allocate("alice", 2, "nvidia-tesla-t4")
    with pytest.raises(NoGpuAvailable) as info:
        allocator.allocate("bob", 1, "nvidia-tesla-t4")
    assert info.value.message == (
        "All 2 GPUs of type t4 are in use by other servers; try again later or pick a CPU profile"
    )
    assert str(info.value) == info.value.message


def test_the_only_gpu_of_a_type_in_use(allocator):
    allocator.allocate("alice", 1, "a100")
    with pytest.raises(NoGpuAvailable, match="^The only GPU of type a100 is in use"):
        allocator.allocate("bob", 1, "a100")


def test_not_enough_free(allocator):
    allocator.allocate("alice", 1, "t4")
    with pytest.raises(NoGpuAvailable) as info:
        allocator.allocate("bob", 2, "t4")
    assert info.value.message == (
        "Only 1 of 2 GPUs of type t4 is free and this server needs 2; try again later or "
        "pick a profile with fewer GPUs"
    )


def test_more_than_the_host_has(allocator):
    with pytest.raises(NoGpuAvailable) as info:
        allocator.allocate("alice", 3, "t4")
    assert info.value.message == (
        "This server needs 3 GPUs of type t4 but this machine has only 2; pick a profile "
        "with fewer GPUs"
    )


def test_type_not_on_this_host(allocator):
    with pytest.raises(NoGpuAvailable) as info:
        allocator.allocate("alice", 1, "nvidia-h100")
    assert info.value.message == (
        "This machine has no GPU of type h100 (it has: NVIDIA A100-SXM4-40GB, Tesla T4); "
        "pick another profile"
    )


def test_host_without_gpus():
    with pytest.raises(NoGpuAvailable, match="This machine has no GPUs; pick a CPU profile"):
        GpuAllocator([]).allocate("alice", 1)


def test_failed_allocation_holds_nothing(allocator):
    with pytest.raises(NoGpuAvailable):
        allocator.allocate("alice", 3, "t4")
    assert allocator.in_use() == {}


def test_release_frees_the_devices(allocator):
    allocator.allocate("alice", 3)
    assert allocator.release("alice") == (T4_0.uuid, T4_1.uuid, A100.uuid)
    assert allocator.in_use() == {}
    assert allocator.allocate("bob", 3) == (T4_0.uuid, T4_1.uuid, A100.uuid)


def test_release_unknown_key_is_harmless(allocator):
    assert allocator.release("nobody") == ()


def test_restore_after_restart(allocator):
    assert allocator.restore("alice", [A100.uuid]) == ()
    assert allocator.in_use() == {"alice": (A100.uuid,)}
    assert allocator.allocate("alice", 1) == (A100.uuid,)  # the restored one, idempotently
    assert allocator.allocate("bob", 2) == (T4_0.uuid, T4_1.uuid)  # never the A100


def test_restore_drops_unknown_and_taken_devices(allocator):
    allocator.allocate("bob", 1)  # T4_0
    dropped = allocator.restore("alice", ["GPU-gone", T4_0.uuid, A100.uuid, A100.uuid])
    assert dropped == ("GPU-gone", T4_0.uuid, A100.uuid)
    assert allocator.in_use() == {"bob": (T4_0.uuid,), "alice": (A100.uuid,)}


def test_restore_with_nothing_left_holds_nothing(allocator):
    assert allocator.restore("alice", ["GPU-gone"]) == ("GPU-gone",)
    assert allocator.in_use() == {}


def test_gpus_are_listed_by_index(allocator):
    assert allocator.gpus == (T4_0, T4_1, A100)
