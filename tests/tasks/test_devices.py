"""GPU sharing and out-of-memory handling: halved batches give the same results, the GPU slot is a real Prefect
limit."""

from __future__ import annotations

import platform
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

import tasks.faces as faces_stage
import tasks.gender as gender_stage
from models.faces import DetectorSettings, build_mtcnn
from models.gender import build_gender_net
from schemas.config import FacesConfig, GenderConfig
from tasks.devices import batch_size_on, cpu_threads, gpu_slot, halve_on_oom


def out_of_memory_above(limit: int, work, sizes: list[int]):
    """`work` that raises CUDA out-of-memory for more than `limit` items, recording each size it is given."""

    def run(items):
        sizes.append(len(items))
        if len(items) > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return work(items)

    return run


def test_halving_retries_until_the_batch_fits() -> None:
    sizes: list[int] = []
    assert halve_on_oom(out_of_memory_above(2, lambda items: [v * 10 for v in items], sizes), list(range(8))) == [
        v * 10 for v in range(8)
    ]
    assert sizes == [8, 4, 2, 2, 4, 2, 2]
    with pytest.raises(torch.cuda.OutOfMemoryError):
        halve_on_oom(out_of_memory_above(0, list, []), [1, 2])


def test_gender_batches_that_run_out_of_memory_are_halved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    paths = []
    for index in range(6):
        paths.append(tmp_path / f"crop{index}.jpg")
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(paths[-1])
    torch.manual_seed(0)
    model = build_gender_net("mini_xception", 32)
    config = GenderConfig(cpu_batch_size=6, loader_workers=0, device="cpu", precision="fp32")
    expected = gender_stage.predict_p_male(model, paths, config, lambda: None)
    sizes: list[int] = []
    real = gender_stage.predict_logits
    monkeypatch.setattr(
        gender_stage,
        "predict_logits",
        lambda m, batch, *a: out_of_memory_above(1, lambda b: real(m, b, *a), sizes)(batch),
    )
    assert gender_stage.predict_p_male(model, paths, config, lambda: None) == pytest.approx(expected, abs=1e-6)
    assert sizes[0] == 6 and max(sizes[1:]) < 6 and sizes.count(1) == 6


def test_face_batches_that_run_out_of_memory_are_halved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    rows = []
    for index in range(4):
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(tmp_path / f"f{index}.png")
        rows.append({"media_id": f"m{index}", "path": f"f{index}.png", "width": 128, "height": 96})
    detector = faces_stage.LoadedDetector(build_mtcnn(DetectorSettings(), None, torch.device("cpu")), "mtcnn-human")
    config = FacesConfig(cpu_batch_size=4, device="cpu")
    expected = [
        (row["media_id"], found) for row, _, found in faces_stage.detect_batches(tmp_path, rows, detector, config, 1)
    ]
    sizes: list[int] = []
    real = faces_stage.detect_faces
    monkeypatch.setattr(
        faces_stage,
        "detect_faces",
        lambda mtcnn, arrays: out_of_memory_above(1, lambda a: real(mtcnn, a), sizes)(arrays),
    )
    halved = [
        (row["media_id"], found) for row, _, found in faces_stage.detect_batches(tmp_path, rows, detector, config, 1)
    ]
    assert halved == expected and sizes == [4, 2, 1, 1, 2, 1, 1]


def active_slots(name: str) -> int:
    """Slots of a global concurrency limit held right now."""
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).active_slots


def test_gpu_slot_holds_the_global_limit_on_cuda_only() -> None:
    name = f"test-gpu-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    with gpu_slot(torch.device("cpu"), name):
        assert active_slots(name) == 0
    with gpu_slot(torch.device("cuda"), name):
        assert active_slots(name) == 1
    assert active_slots(name) == 0
    with gpu_slot(torch.device("cuda"), ""):
        assert active_slots(name) == 0


def test_cpu_threads_sets_and_restores_the_intra_op_count_on_the_cpu_only() -> None:
    before = torch.get_num_threads()
    with cpu_threads(torch.device("cpu"), 1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with cpu_threads(torch.device("cuda"), 1):
        assert torch.get_num_threads() == before
    with cpu_threads(torch.device("cpu"), None):  # unset: torch's default stays
        assert torch.get_num_threads() == before


def test_each_stage_batches_by_its_device() -> None:
    for config in (FacesConfig(batch_size=8, cpu_batch_size=1), GenderConfig(batch_size=32, cpu_batch_size=8)):
        assert batch_size_on(torch.device("cuda"), config) == config.batch_size
        assert batch_size_on(torch.device("cpu"), config) == config.cpu_batch_size


REFAULT_PROBE = """
import ctypes, resource, sys
from tasks.devices import retain_freed_memory
applied = retain_freed_memory(int(sys.argv[1]))
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
size = 64 * 2**20
block = libc.malloc(size); ctypes.memset(block, 1, size); libc.free(ctypes.c_void_p(block))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = libc.malloc(size); ctypes.memset(block, 1, size)
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def refaults(retained_mb: int) -> tuple[bool, int]:
    """In a fresh process: whether retention applied, and the page faults of re-allocating and touching a freed 64 MiB
    block."""
    done = subprocess.run(
        [sys.executable, "-c", REFAULT_PROBE, str(retained_mb)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    applied, faults = done.stdout.split()
    return applied == "True", int(faults)


def test_retained_freed_memory_is_reused_without_page_faults():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's malloc only")
    default_applied, default_faults = refaults(0)
    applied, faults = refaults(128)
    assert not default_applied and applied
    if default_faults < 8192:  # 16,384 pages of 4 KiB; transparent huge pages would hide the difference
        pytest.skip(f"the default allocator refaulted only {default_faults} pages here")
    assert faults < default_faults / 8
