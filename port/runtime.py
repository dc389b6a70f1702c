"""ONNX Runtime sessions: the CUDA provider when it can really run, else the CPU.

onnxruntime-gpu lists CUDAExecutionProvider even on machines without a GPU (or
without the CUDA libraries it needs); a session then silently falls back to the
CPU. Here the choice is made once, by asking the driver for a device and by
checking which provider a session actually got, and said once.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
from pathlib import Path

import numpy as np

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class ModelError(RuntimeError):
    """Missing, corrupt or mismatched ONNX model; the message is one line."""


def _onnxruntime():
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)  # errors only: fallback chatter is ours to say
    return onnxruntime


@functools.lru_cache(maxsize=None)
def cuda_device_count() -> int:
    """Number of CUDA devices the driver reports (0 without a driver)."""
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            driver = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return count.value
    return 0


@functools.lru_cache(maxsize=None)
def resolve(device: str = "auto") -> tuple[str, str]:
    """("cuda" | "cpu", reason) for a --device choice of auto, cpu or cuda."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {device}")
    if device == "cpu":
        return "cpu", "CPU (asked for)"
    if CUDA not in _onnxruntime().get_available_providers():
        reason = "this onnxruntime has no CUDA provider"
    elif cuda_device_count() == 0:
        reason = "no CUDA device"
    else:
        return "cuda", "CUDA"
    if device == "cuda":
        raise ModelError(f"--device cuda asked for, but {reason}")
    return "cpu", f"CPU ({reason})"


def providers(kind: str) -> list:
    """ONNX Runtime's providers for a resolved device. On CUDA, TF32 off, as the
    reference runs torch (reference/run.py): the CUDA provider otherwise rounds
    matmul and convolution inputs to 10-bit mantissas (on the H100 that changed the
    RTTM of a 10-minute recording; docs/performance.md, GPU)."""
    if kind != "cuda":
        return [CPU]
    return [(CUDA, {"device_id": 0, **cuda_tuning(), "use_tf32": "0"}), CPU]


# CUDA provider options for measurements (benchmarks/gpu_sweep.py): a JSON object of
# onnxruntime CUDA provider options, e.g. {"cudnn_conv_algo_search": "HEURISTIC",
# "arena_extend_strategy": "kSameAsRequested", "gpu_mem_limit": "8589934592"}. TF32
# stays off whatever it says. Unset, ONNX Runtime's defaults (EXHAUSTIVE search).
CUDA_OPTIONS_ENV = "PYANNOTE_PORT_CUDA_OPTIONS"


def cuda_tuning() -> dict:
    """The CUDA provider options of $PYANNOTE_PORT_CUDA_OPTIONS (strings), else none."""
    text = os.environ.get(CUDA_OPTIONS_ENV, "").strip()
    if not text:
        return {}
    try:
        options = json.loads(text)
    except ValueError:
        raise ModelError(f"${CUDA_OPTIONS_ENV} is not a JSON object: {text[:80]}") from None
    if not isinstance(options, dict):
        raise ModelError(f"${CUDA_OPTIONS_ENV} is not a JSON object: {text[:80]}")
    return {str(k): str(v) for k, v in options.items() if k != "use_tf32"}


def session(path: str | Path, device: str = "auto", threads: int | None = None):
    """An InferenceSession on the resolved device; raises ModelError with one line."""
    ort = _onnxruntime()
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"ONNX model not found: {path} (run 'verify.py export')")
    kind, _ = resolve(device)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # the arena keeps activations between runs: without it every run maps fresh
    # pages, 160k page faults on the sample and 2-4 % of the port's wall time.
    # The last run of a long recording hands them back (`run(..., last=True)`).
    options.enable_cpu_mem_arena = True
    try:
        sess = ort.InferenceSession(str(path), sess_options=options, providers=providers(kind))
    except Exception as error:  # onnxruntime raises its own exception types
        text = str(error).strip().splitlines()
        raise ModelError(f"cannot load ONNX model {path}: {(text[0] if text else type(error).__name__)[:160]}") from None
    if kind == "cuda" and sess.get_providers()[0] != CUDA:
        if device == "cuda":
            raise ModelError("--device cuda asked for, but onnxruntime could not start its CUDA provider")
        _FALLBACKS.add(str(path))
    return sess


_FALLBACKS: set[str] = set()  # models whose CUDA session silently fell back to the CPU


def describe(device: str = "auto") -> str:
    """What the port runs on, in words, for the one line the CLIs print."""
    kind, reason = resolve(device)
    if kind == "cuda" and _FALLBACKS:
        return "CPU (onnxruntime could not start its CUDA provider)"
    return reason


@contextlib.contextmanager
def models_own_the_cores():
    """numpy's BLAS on one thread while the models run. OpenBLAS's threads busy-wait
    after each call (fbank's mel product) on the cores ONNX Runtime's threads are
    computing on: 3 % of the port's wall time on 2 cores. Results are the same (BLAS
    splits rows and columns among threads, not the sums)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@functools.lru_cache(maxsize=None)
def _shrink():
    options = _onnxruntime().RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def run(sess, feeds: dict, last: bool = False) -> list:
    """`sess.run(None, feeds)`; with `last`, the arena's free memory goes back to the
    system afterwards (the working set is not pinned past the recording's last batch)."""
    shrink = last and sess.get_providers()[0] == CPU  # CUDA sessions keep their own arenas
    return sess.run(None, feeds, _shrink() if shrink else None)


def metadata(sess) -> dict:
    """The JSON metadata reference/export.py writes into every model."""
    meta = sess.get_modelmeta().custom_metadata_map
    if "pyannote_port" not in meta:
        raise ModelError("ONNX model has no pyannote_port metadata (export it with 'verify.py export')")
    return json.loads(meta["pyannote_port"])


def providers_of(sess) -> list[str]:
    return list(sess.get_providers())


def as_float32(array) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)
