#!/usr/bin/env python3
"""numpy's default argsort on tied values, on this CPU and with its SIMD paths switched off.

    python benchmarks/argsort_ties.py                 # print the orders (about 10 s)
    python benchmarks/argsort_ties.py --out FILE      # and write them to FILE

pyannote's `SpeakerDiarizationMixin.to_diarization` keeps, in every output frame, the
`count` clusters that `np.argsort(-activations, axis=-1)` puts first. The activations
are sums of 0/1 segmentations, so equal values are common, and numpy's default sort
(kind="quicksort") is not stable: which tied cluster comes first depends on the code
numpy runs. On x86-64, numpy 2.x hands 32- and 64-bit argsorts to Intel's
x86-simd-sort (AVX-512 or AVX2 sorting networks for rows up to 256 values); elsewhere,
and with those paths disabled, it runs its own introsort, whose insertion sort makes
rows of at most 16 values come out in the stable order.

The script runs the same rows three times in child processes: as numpy finds this CPU,
with the AVX-512 targets disabled (`NPY_DISABLE_CPU_FEATURES`, the AVX2 path an
AVX2-only machine takes) and with every dispatch target disabled (numpy's baseline
code, as on a CPU without AVX2). Each row is the negated activations of one frame, built
as to_diarization builds it (so 0 becomes -0.0). For each mode it prints the order of
a few fixed rows against the stable order, how many of all rows of K values in 0..K-1
(K <= 6: every tie pattern) leave the stable order, and, for seeded random rows of
small integer activations, how many have a tie and how many leave the stable order,
with a digest of all the orders to compare machines and numpy versions by (run it with
another numpy on PYTHONPATH to measure that numpy).

Only numpy is needed. Exit 0 when every mode ran, 1 when one failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys

DTYPES = ("float32", "float64")
SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 16, 17, 32)
EXHAUSTIVE_SIZES = (1, 2, 3, 4, 5, 6)  # every row of K values from 0..K-1 (K**K rows)
RANDOM_ROWS = 20000
RANDOM_SEED = 0
MAX_ACTIVATION = 3  # activations drawn from 0..3 (0/1 sums over a few chunks: ties everywhere)


def fixed_rows(k: int) -> dict[str, list[float]]:
    """Activations of one frame (to_diarization ranks their negation)."""
    rows = {
        "all zero": [0.0] * k,
        "one active, last": [0.0] * (k - 1) + [1.0],
        "one active, first": [1.0] + [0.0] * (k - 1),
        "two tied actives, last": [0.0] * max(k - 2, 0) + [2.0, 2.0][: min(k, 2)],
        "alternating 1 2": [float(1 + i % 2) for i in range(k)],
    }
    return rows


def _child(dtypes: tuple[str, ...]) -> dict:
    import numpy as np

    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    disabled = os.environ.get("NPY_DISABLE_CPU_FEATURES", "")
    out = {"numpy": np.__version__, "disabled": disabled,
           "active_targets": [f for f in __cpu_dispatch__ if __cpu_features__.get(f)],
           "fixed": {}, "signed_zero": {}, "exhaustive": {}, "random": {}}
    for dtype in dtypes:
        for k in SIZES:
            for name, activations in fixed_rows(k).items():
                row = -np.asarray(activations, dtype=dtype)
                default = np.argsort(row).tolist()
                stable = np.argsort(row, kind="stable").tolist()
                out["fixed"][f"{dtype}|{k}|{name}"] = [default, stable]
            # +0.0 and -0.0 mixed in one row (they compare equal), one -1 at the end
            row = np.asarray([0.0 if i % 2 else -0.0 for i in range(k - 1)] + [-1.0], dtype=dtype)
            out["signed_zero"][f"{dtype}|{k}"] = [np.argsort(row).tolist(), np.argsort(row, kind="stable").tolist()]
            if k in EXHAUSTIVE_SIZES:
                grid = np.stack(np.meshgrid(*[np.arange(k)] * k, indexing="ij"), -1).reshape(-1, k)
                rows = -grid.astype(dtype)
                default = np.argsort(rows, axis=-1)
                stable = np.argsort(rows, axis=-1, kind="stable")
                differs = np.flatnonzero(np.any(default != stable, axis=1))
                out["exhaustive"][f"{dtype}|{k}"] = {
                    "rows": int(len(rows)), "differs": int(differs.size),
                    "first": None if not differs.size else [grid[differs[0]].tolist(), default[differs[0]].tolist(),
                                                            stable[differs[0]].tolist()]}
            rng = np.random.default_rng(RANDOM_SEED + k)
            activations = rng.integers(0, MAX_ACTIVATION + 1, size=(RANDOM_ROWS, k)).astype(dtype)
            rows = -activations
            default = np.argsort(rows, axis=-1)
            stable = np.argsort(rows, axis=-1, kind="stable")
            order_differs = np.any(default != stable, axis=1)
            ordered = np.sort(rows, axis=1)
            tied = np.any(ordered[:, 1:] == ordered[:, :-1], axis=1) if k > 1 else np.zeros(RANDOM_ROWS, bool)
            out["random"][f"{dtype}|{k}"] = {
                "tied": int(tied.sum()),
                "order_differs": int(order_differs.sum()),
                "digest": hashlib.sha256(default.astype(np.int64).tobytes()).hexdigest()[:12],
            }
    return out


def _cpu() -> str:
    """The CPU's model, family/model numbers and the SIMD flags that decide numpy's sort."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model", "flags", "Features") and key not in info:
                    info[key] = value.strip()
    except OSError:
        pass
    name = info.get("model name") or platform.processor() or platform.machine()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    simd = [f for f in ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vbmi2", "avx512_fp16", "amx_tile",
                        "asimd", "sve") if f in flags]
    family = f", family {info['cpu family']} model {info['model']}" if "cpu family" in info and "model" in info else ""
    return f"{name}{family}; SIMD flags: {' '.join(simd) or 'unknown'}"


def _modes() -> list[tuple[str, str | None]]:
    """(title, NPY_DISABLE_CPU_FEATURES or None) for the modes this numpy and CPU allow."""
    probe = subprocess.run(
        [sys.executable, "-c",
         "import json\n"
         "try:\n from numpy._core._multiarray_umath import __cpu_dispatch__ as d, __cpu_features__ as f\n"
         "except ImportError:\n from numpy.core._multiarray_umath import __cpu_dispatch__ as d, __cpu_features__ as f\n"
         "print(json.dumps([x for x in d if f.get(x)]))"],
        capture_output=True, text=True, check=True, env={**os.environ, "NPY_DISABLE_CPU_FEATURES": ""})
    present = json.loads(probe.stdout)
    avx512 = [f for f in present if f.startswith("AVX512") or f == "X86_V4"]
    modes: list[tuple[str, str | None]] = [("as numpy finds this CPU", None)]
    if avx512:
        modes.append(("AVX-512 targets disabled (the AVX2 path)", " ".join(avx512)))
    if present:
        modes.append(("every dispatch target disabled (numpy's baseline code)", " ".join(present)))
    return modes


def _fmt(order: list[int]) -> str:
    return "[" + " ".join(str(i) for i in order) + "]"


def report(results: list[tuple[str, str | None, dict]]) -> str:
    first = results[0][2]
    lines = [
        "numpy argsort on tied values (to_diarization's np.argsort(-activations, axis=-1))",
        f"date: {datetime.date.today().isoformat()}",
        f"cpu: {_cpu()} ({platform.machine()}, {os.cpu_count()} logical CPUs)",
        f"python {platform.python_version()}, numpy {first['numpy']}",
        f"numpy dispatch targets this CPU has: {' '.join(first['active_targets']) or 'none'}",
        "",
        "rows: the negated activations of one frame (0 -> -0.0); 'default' is np.argsort's "
        "order, 'stable' kind='stable'; '=' marks a default order equal to the stable one.",
    ]
    for title, disabled, out in results:
        lines += ["", "=" * 100, f"mode: {title}",
                  f"NPY_DISABLE_CPU_FEATURES={disabled or '(unset)'}; targets left: "
                  f"{' '.join(out['active_targets']) or 'none (baseline)'}", "=" * 100]
        for dtype in DTYPES:
            lines.append(f"-- {dtype}: fixed rows (activations -> default order | stable order)")
            for k in SIZES:
                for name, activations in fixed_rows(k).items():
                    default, stable = out["fixed"][f"{dtype}|{k}|{name}"]
                    mark = "=" if default == stable else "DIFFERS"
                    values = "[" + " ".join(f"{v:g}" for v in activations) + "]"
                    lines.append(f"  K={k:<2} {name:<24} {values:<40} {_fmt(default):<28} | {_fmt(stable):<28} {mark}")
            lines.append(f"-- {dtype}: +0.0/-0.0 mixed, then -1 (the row itself, not negated)")
            for k in SIZES:
                default, stable = out["signed_zero"][f"{dtype}|{k}"]
                mark = "=" if default == stable else "DIFFERS"
                lines.append(f"  K={k:<2} {_fmt(default):<40} | {_fmt(stable):<40} {mark}")
            lines.append(f"-- {dtype}: every row of K activations from 0..K-1: rows whose order != stable "
                         "(first such row: activations -> default | stable)")
            for k in EXHAUSTIVE_SIZES:
                r = out["exhaustive"][f"{dtype}|{k}"]
                first = ""
                if r["first"]:
                    a, d, st = r["first"]
                    first = f"   first {_fmt(a)} -> {_fmt(d)} | {_fmt(st)}"
                lines.append(f"  K={k:<2} {r['differs']:>6} of {r['rows']:>6}{first}")
            lines.append(f"-- {dtype}: {RANDOM_ROWS} random rows per K (activations 0..{MAX_ACTIVATION}, "
                         f"seed {RANDOM_SEED}+K): rows with a tie, orders != stable, digest of the orders")
            for k in SIZES:
                r = out["random"][f"{dtype}|{k}"]
                lines.append(f"  K={k:<2} rows with a tie {r['tied']:>6}   orders differ from stable "
                             f"{r['order_differs']:>6}   digest {r['digest']}")
    lines += ["", "=" * 100, "summary", "=" * 100]
    for title, _, out in results:
        small = sum(out["exhaustive"][f"float32|{k}"]["differs"] for k in EXHAUSTIVE_SIZES if k <= 3)
        first = min((k for k in EXHAUSTIVE_SIZES if out["exhaustive"][f"float32|{k}"]["differs"]), default=None)
        stable_upto = max((k for k in SIZES if all(out["random"][f"{d}|{k}"]["order_differs"] == 0 for d in DTYPES)),
                          default=0)
        lines.append(f"  {title}: K <= 3 rows off the stable order: {small}; first K with such a row: "
                     f"{first if first is not None else 'none up to ' + str(max(EXHAUSTIVE_SIZES))}; "
                     f"random rows all in the stable order for every K up to {stable_upto} tested")
    for i, (a, _, out_a) in enumerate(results):
        for b, _, out_b in results[i + 1:]:
            digests = all(out_a["random"][key]["digest"] == out_b["random"][key]["digest"] for key in out_a["random"])
            same = out_a["fixed"] == out_b["fixed"] and out_a["exhaustive"] == out_b["exhaustive"] and digests
            lines.append(f"  '{a}' and '{b}': {'the same order on every row' if same else 'different orders'}")
    lines += ["", "digests equal between two modes or machines = the same order on every random row"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="also write the report to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(DTYPES)))
        return 0
    results = []
    for title, disabled in _modes():
        env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": disabled or ""}
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child"],
                              capture_output=True, text=True, env=env)
        if done.returncode != 0:
            print(f"argsort_ties: the child for {title!r} failed: {done.stderr.strip().splitlines()[-1:]}",
                  file=sys.stderr)
            return 1
        results.append((title, disabled, json.loads(done.stdout)))
    text = report(results)
    sys.stdout.write(text)
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as handle:
            handle.write(text)
        os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
