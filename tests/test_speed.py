"""The overlapped pipeline (workers), the GPU script's CPU dry run, and the CUDA path (marker `gpu`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from port.pipeline import Pipeline

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "tests" / "data" / "sample.wav"
AMI = REPO.parent / "shared" / "audio" / "ami"


def test_workers_change_nothing(onnx_folder, tmp_path, monkeypatch):
    """The CPU default (two single-threaded workers: segmentation split between them, then
    embeddings beside it, trunk batches of 2), one worker on all-core sessions with the
    previous batches (16 and 4), and the default with numpy's BLAS left multi-threaded
    dump bit-identical stages, in the same order, with a hook."""
    import contextlib

    import soundfile as sf

    from port import runtime

    short = tmp_path / "short.wav"  # 14 s: 5 chunks, so batches of 4 meet the padded last chunk
    data, rate = sf.read(SAMPLE, dtype="float32", frames=14 * 16000)
    sf.write(short, data, rate)
    default = Pipeline.from_folder(onnx_folder, device="cpu")
    cores = os.cpu_count() or 1
    assert default.workers == (2 if cores >= 2 else 1) and default.embedding.batch_size == 2
    results = []
    for settings, blas_limited in (({}, True), ({"workers": 1, "embedding_batch": 4}, True), ({}, False)):
        if not blas_limited:
            monkeypatch.setattr(runtime, "models_own_the_cores", contextlib.nullcontext)
        pipeline = Pipeline.from_folder(onnx_folder, device="cpu", **settings)
        order = []
        result = pipeline(short, hook=lambda stage, name, value: order.append((stage, name, value)))
        results.append((result, order))
    (one, one_order), *others = results
    for other, other_order in others:
        assert [key[:2] for key in one_order] == [key[:2] for key in other_order]
        for (stage, name, a), (_, _, b) in zip(one_order, other_order):
            if isinstance(a, np.ndarray):
                assert a.shape == b.shape and np.array_equal(a, b, equal_nan=True), (stage, name)
        assert one.rttm == other.rttm and one.rttm
        assert len(other_order) == len(one_order) > 20


def test_arena_release_changes_nothing(onnx_folder):
    """`runtime.run(..., last=True)` (the arena handed back after a long recording's last
    batch) gives the output a plain run gives, and the session runs on after it."""
    from port import runtime
    from port.segmentation import Segmentation

    model = Segmentation(onnx_folder / "segmentation.onnx", device="cpu")
    rng = np.random.default_rng(0)
    chunks = rng.normal(scale=0.1, size=(2, 1, model.num_samples)).astype(np.float32)
    plain = model(chunks)
    assert np.array_equal(model(chunks, last=True), plain)
    assert np.array_equal(model(chunks), plain)
    from port.pipeline import RELEASE_FROM, releases_arenas

    assert releases_arenas(RELEASE_FROM, RELEASE_FROM) and not releases_arenas(RELEASE_FROM - 1, RELEASE_FROM)
    assert not releases_arenas(RELEASE_FROM - 1, RELEASE_FROM - 1)  # short recordings keep them
    # with two workers the last two batches run side by side: the one that ends last releases
    assert releases_arenas(RELEASE_FROM - 2, RELEASE_FROM, span=2) and not releases_arenas(RELEASE_FROM - 3, RELEASE_FROM, span=2)


def test_cuda_provider_keeps_tf32_off():
    """The CUDA provider is asked for full float32 (TF32 off), as pyannote runs on CUDA."""
    from port import runtime

    (name, options), cpu = runtime.providers("cuda")
    assert name == runtime.CUDA and options["use_tf32"] == "0" and cpu == runtime.CPU
    assert runtime.providers("cpu") == [runtime.CPU]
    (_, fast), _ = runtime.providers("cuda", tf32=True)  # only the fast mode asks for TF32
    assert fast["use_tf32"] == "1"


@pytest.mark.slow  # minutes: pyannote and the port on three recordings, twice over
def test_gpu_script_dry_run(tmp_path):
    """benchmarks/gpu.sh --dry-run: every step of the GPU measurement on the CPU with tiny
    inputs; it writes gpu.json with both sides, RTF, peak RSS and identical RTTMs. With
    --wheels (an offline machine) it unpacks the carried archives onto PYTHONPATH.
    The AMI excerpts are ../shared's, or the two bundled in tests/data without it."""
    import tarfile

    wheels, out = tmp_path / "wheels", tmp_path / "out"
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "__init__.py").write_text("")
    wheels.mkdir()
    with tarfile.open(wheels / "probe.tar.xz", "w:xz") as archive:
        archive.add(tmp_path / "probe", arcname="gpu_sh_probe")
    env = dict(os.environ, PY=sys.executable)
    if any(AMI.glob("*.wav")):
        env["AMI"] = str(AMI)
    run = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu.sh"), "--dry-run", "--out", str(out),
                          "--wheels", str(wheels)], cwd=REPO, env=env, capture_output=True, text=True, timeout=2400)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "wheels: 0 wheels, 1 archives" in run.stdout and (wheels / "site" / "gpu_sh_probe").is_dir()
    report = json.loads((out / "gpu.json").read_text())
    assert report["device"] == "cpu" and report["verify_exit"] == 0
    assert len(report["verify"]["recordings"]) == 3
    assert [round(m["minutes"], 1) for m in report["memory"]] == [0.2, 0.2]
    for m in report["memory"]:
        assert m["rttm_identical"] is True
        for side in ("port", "pyannote"):
            assert m[side]["exit"] == 0 and m[side]["rtf"] > 0 and m[side]["peak_rss_mb"] > 100
    speed = report["speed"]["results"][0]
    assert speed["rttm_identical"] and speed["floor_s"] > 0 and speed["port_floor_ratio"] > 0
    assert "pyannote" in run.stdout and "port" in run.stdout  # the table


@pytest.mark.gpu
def test_port_on_cuda_matches_cpu(onnx_folder):
    """ONNX Runtime's CUDA provider: the RTTM the CPU gives, on the sample."""
    cuda = Pipeline.from_folder(onnx_folder, device="cuda")
    assert cuda.providers["embedding"] == "CUDAExecutionProvider"
    assert cuda(SAMPLE).rttm == Pipeline.from_folder(onnx_folder, device="cpu")(SAMPLE).rttm


@pytest.mark.gpu
def test_reference_on_cuda_without_tf32(torch_models):
    """pyannote on CUDA for the reference, TF32 off (parity with float32 on the CPU)."""
    import torch

    from reference.run import build_pipeline, run

    pipeline = build_pipeline(*torch_models, device="cuda")
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert pipeline.device.type == "cuda"
    assert run(SAMPLE, pipeline).rttm
