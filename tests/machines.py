"""Machines the execution tests place nets on, described as their capabilities (never the host's)."""

from __future__ import annotations

from models.execution import Hardware

AVX2_EPYC = Hardware(
    device="cpu",
    cpu_model="AMD EPYC",
    cpu_flags=frozenset({"avx2", "fma", "f16c"}),
    cpu_capability="AVX2",
    onednn_max_isa="",
    cores=2,
    torch_version="2.14.1",
)
ZEN4 = Hardware(
    device="cpu",
    cpu_model="AMD EPYC 9R14",
    cpu_flags=frozenset({"avx2", "avx512f", "avx512_bf16"}),
    cpu_capability="AVX512",
    onednn_max_isa="",
    cores=2,
    torch_version="2.14.1",
)
H200 = Hardware(
    device="cuda",
    cpu_model="AMD EPYC",
    cpu_flags=frozenset({"avx2"}),
    cpu_capability="AVX2",
    onednn_max_isa="",
    cores=16,
    gpu_name="NVIDIA H200",
    gpu_capability=(9, 0),
    torch_version="2.14.1",
)
