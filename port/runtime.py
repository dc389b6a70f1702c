"""ONNX Runtime sessions: the CUDA provider when it can really run, else the CPU; and
the precision mode's graphs.

onnxruntime-gpu lists CUDAExecutionProvider even on machines without a GPU (or
without the CUDA libraries it needs); a session then silently falls back to the
CPU. Here the choice is made once, by asking the driver for a device and by
checking which provider a session actually got, and said once.

Precision modes (`PRECISIONS`): `exact` (the default) runs the exported graphs, as
exact as pyannote at every layer. `fast` runs the fastest formulation the provider
has (`fast_graphs`): ONNX Runtime's own LSTM op for the segmentation (cuDNN's on
CUDA), and for the ResNet trunk whichever of its formulations this machine runs
fastest, measured once per machine and cached beside the graphs (`fast_trunk`).
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


def providers(kind: str, tf32: bool = False) -> list:
    """ONNX Runtime's providers for a resolved device. On CUDA, TF32 off, as the
    reference runs torch (reference/run.py): the CUDA provider otherwise rounds
    matmul and convolution inputs to 10-bit mantissas (on the H100 that changed the
    RTTM of a 10-minute recording; docs/performance.md, GPU). `tf32`: on (the fast
    mode's float32 trunk on CUDA only)."""
    if kind != "cuda":
        return [CPU]
    return [(CUDA, {"device_id": 0, **cuda_tuning(), "use_tf32": "1" if tf32 else "0"}), CPU]


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


def session(path: str | Path, device: str = "auto", threads: int | None = None, tf32: bool = False):
    """An InferenceSession on the resolved device; raises ModelError with one line.
    `tf32`: TF32 allowed on CUDA (the fast mode only)."""
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
        sess = ort.InferenceSession(str(path), sess_options=options, providers=providers(kind, tf32))
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


def trim_heap() -> None:
    """Hand the C heap's free memory back to the system (glibc's malloc_trim; elsewhere
    nothing): numpy arrays under glibc's mmap threshold (up to 32 MB) are freed into
    the heap, which otherwise keeps them resident under the clustering's distance matrix."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


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


# ----------------------------------------------------------------------------- precision modes
PRECISIONS = ("exact", "fast")
FAST_DIR = "fast"  # reference/export.py: ensure_fast writes the fast graphs there
# the trunk's formulations per provider, with the graph each runs (relative to the export)
TRUNKS = {
    "cpu": {"float32": "embedding-trunk.onnx", "int8-dynamic": f"{FAST_DIR}/embedding-trunk.int8-dynamic.onnx",
            "int8-static": f"{FAST_DIR}/embedding-trunk.int8-static.onnx"},
    "cuda": {"float32": "embedding-trunk.onnx", "tf32": "embedding-trunk.onnx",
             "float16": f"{FAST_DIR}/embedding-trunk.float16.onnx"},
}
FAST_TRUNK_ENV = "PYANNOTE_PORT_FAST_TRUNK"  # force one of TRUNKS[provider] (measurements)
CHOICE_FILE = "choice.json"


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be {' or '.join(PRECISIONS)}, not {precision}")
    return precision


def formulation_of(sess, default: str = "float32") -> str:
    """A graph's formulation, from its metadata: the segmentation's LSTM ("exact-lstm", the
    Scan with float64 activations and cell, or "lstm-op", ONNX Runtime's own), a derived
    trunk's ("int8-static", ...), else `default`."""
    meta = metadata(sess)
    if "formulation" in meta:
        return meta["formulation"]
    if meta.get("kind") == "segmentation":
        return "exact-lstm" if meta.get("exact_lstm") else "lstm-op"
    return default


def tf32_of(sess) -> bool:
    """Whether a session runs on CUDA with TF32 allowed."""
    return dict(sess.get_provider_options().get(CUDA, {})).get("use_tf32") == "1"


def machine_key(kind: str, threads: int) -> str:
    """What a trunk timing depends on: the CPU (model and the SIMD it has), ONNX Runtime,
    the provider and the threads per session."""
    cpu, flags = "unknown CPU", set()
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        import platform

        cpu = platform.processor() or platform.machine()
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16") if f in flags]
    device = "CUDA" if kind == "cuda" else "CPU"
    return f"{cpu} [{' '.join(simd) or 'no AVX2'}] onnxruntime {_onnxruntime().__version__} {device} {threads} thread(s)"


def _time_trunk(path: Path, kind: str, threads: int, tf32: bool, shape: list[int]) -> float:
    """Seconds per chunk of one trunk graph (batch of 2, best of 3 after a warm-up run)."""
    import time

    sess = session(path, device=kind, threads=threads, tf32=tf32)
    fbank = np.random.default_rng(0).normal(size=(2, *shape)).astype(np.float32)
    sess.run(None, {"fbank": fbank})
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        sess.run(None, {"fbank": fbank})
        best = min(best, time.perf_counter() - began)
    return best / 2


def fast_trunk(folder: str | Path, kind: str, threads: int, fbank_shape: list[int]) -> tuple[str, dict]:
    """The fast mode's trunk on this machine: (formulation, how it was chosen). Every
    formulation the export has for the provider is timed once per machine
    (`machine_key`) and the fastest kept in ``<export>/fast/choice.json``; then it is
    read from there. $PYANNOTE_PORT_FAST_TRUNK forces one."""
    import datetime

    folder = Path(folder)
    candidates = {name: folder / rel for name, rel in TRUNKS[kind].items() if (folder / rel).is_file()}
    forced = os.environ.get(FAST_TRUNK_ENV, "").strip()
    if forced:
        if forced not in candidates:
            raise ModelError(f"${FAST_TRUNK_ENV}={forced}: not one of {', '.join(candidates)} for {kind.upper()}")
        return forced, {"chosen_by": f"${FAST_TRUNK_ENV}"}
    key = machine_key(kind, threads)
    store = folder / FAST_DIR / CHOICE_FILE
    try:
        known = json.loads(store.read_text()) if store.is_file() else {}
    except ValueError:
        known = {}
    entry = known.get(key)
    if entry and entry.get("choice") in candidates and set(entry.get("ms_per_chunk", {})) == set(candidates):
        return entry["choice"], {"chosen_by": "measured", **entry}
    timings = {name: 1000 * _time_trunk(path, kind, threads, name == "tf32", fbank_shape)
               for name, path in candidates.items()}
    entry = {"choice": min(timings, key=timings.get), "ms_per_chunk": {k: round(v, 1) for k, v in timings.items()},
             "machine": key, "measured": datetime.date.today().isoformat()}
    known[key] = entry
    tmp = store.with_name(f".{store.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, store)  # a read-only export still runs: the choice is only not kept
    except OSError:
        tmp.unlink(missing_ok=True)
    return entry["choice"], {"chosen_by": "measured", **entry}


def fast_graphs(folder: str | Path, device: str, threads: int, fbank_shape: list[int]) -> dict:
    """The fast mode's graphs: {"segmentation": path, "segmentation_tf32": bool, "trunk": path,
    "trunk_formulation": ..., "tf32": bool (the trunk's), "choice": {...}}; ModelError when the
    export has no fast graphs."""
    folder = Path(folder)
    kind, _ = resolve(device)
    segmentation = folder / FAST_DIR / "segmentation.onnx"
    if not segmentation.is_file():
        raise ModelError(f"no fast graphs in {folder} (run 'python verify.py export --precision fast')")
    formulation, choice = fast_trunk(folder, kind, threads, fbank_shape)
    return {"segmentation": segmentation, "segmentation_tf32": kind == "cuda",  # cuDNN's LSTM, TF32 allowed
            "trunk": folder / TRUNKS[kind][formulation], "trunk_formulation": formulation,
            "tf32": formulation == "tf32", "choice": choice}
