"""Where a side ran: the platform every manifest records (``"platform"``).

pyannote's own result can depend on the machine (numpy's default sort breaks ties in
an order that depends on the CPU's SIMD level: docs/machines.md), so a reference dump
made on one machine and a candidate made on another say so, and the verdict shows
both. Only the standard library and numpy are needed; the versions of what else a
side ran (ONNX Runtime, torch, pyannote.audio) are added when those are loaded.
"""

from __future__ import annotations

import platform as _platform
import sys
from functools import lru_cache

import numpy as np

def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what `platform` says."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return _platform.processor() or _platform.machine()


def simd() -> str:
    """numpy's dispatch targets this CPU has (as `np.show_runtime()` reports them)."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # numpy 1.x
        try:
            from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
        except ImportError:
            return "unknown"
    found = [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]
    return " ".join(found) or "baseline only"


def blas() -> str:
    """numpy's BLAS: name, version and the kernel architecture it chose."""
    try:
        from threadpoolctl import threadpool_info

        found = [entry for entry in threadpool_info() if entry.get("user_api") == "blas"]
        # numpy's own BLAS (scipy may have loaded another copy: which is first depends on imports)
        found.sort(key=lambda entry: "numpy" not in str(entry.get("filepath", "")))
        for entry in found:
            parts = [entry.get("internal_api", "?"), entry.get("version") or "", entry.get("architecture") or ""]
            return " ".join(p for p in parts if p)
    except Exception:  # noqa: BLE001 - a description, never a failure
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001
        return "unknown"


@lru_cache(maxsize=None)
def _base() -> tuple[tuple[str, str], ...]:
    return (
        ("machine", _platform.machine()),
        ("system", f"{_platform.system()} {_platform.release()}"),
        ("cpu", cpu_name()),
        ("simd", simd()),
        ("python", _platform.python_version()),
        ("numpy", np.__version__),
        ("blas", blas()),
    )


def describe() -> dict[str, str]:
    """This process's platform: machine, OS, CPU, numpy's SIMD level, numpy, BLAS, and
    the versions of scipy, scikit-learn, ONNX Runtime, torch and pyannote.audio where they
    are loaded."""
    info = dict(_base())
    # scipy: its eigen-solvers give PLDA columns other signs; scikit-learn: K-Means, which
    # pyannote does not pin (docs/machines.md)
    for module, key in (("scipy", "scipy"), ("sklearn", "scikit-learn"), ("onnxruntime", "onnxruntime"),
                        ("torch", "torch"), ("pyannote.audio", "pyannote.audio")):
        loaded = sys.modules.get(module)
        version = getattr(loaded, "__version__", None) if loaded is not None else None
        if version:
            info[key] = str(version)
    return info
