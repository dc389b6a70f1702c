"""Benchmark: port.linkage.linkage vs scipy.cluster.hierarchy.linkage.

Centroid linkage on unit-normalised 256-d vectors (what pyannote feeds it),
either uniform on the sphere ("sphere") or a few Gaussian blobs on the sphere
("blobs", like speaker embeddings).  Checks that the outputs are equal and
prints the times and the port/scipy ratio, end to end from the observations
(both include the same euclidean ``pdist``, also timed alone) and on the
condensed distances (the clustering alone).

    python benchmarks/linkage.py [--sizes 1000 2000 5000 10000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy
from scipy.cluster import hierarchy as H
from scipy.spatial.distance import pdist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from port.linkage import fcluster, linkage  # noqa: E402


def sphere(rng, n, d):
    X = rng.normal(size=(n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def blobs(rng, n, d, k=6, spread=0.06):
    centers = sphere(rng, k, d)
    X = centers[rng.integers(0, k, size=n)] + spread * rng.normal(size=(n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


DATA = {"sphere": sphere, "blobs": blobs}


def best_of(fn, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run(sizes, dim, repeat, repeat_large, seed, kinds):
    rows = []
    for kind in kinds:
        for n in sizes:
            X = DATA[kind](np.random.default_rng(seed + n), n, dim)
            r = repeat if n <= 2000 else repeat_large
            t_pdist, y = best_of(lambda: pdist(X), r)
            # end to end, from the observations (pdist included in both)
            t_scipy, Zs = best_of(lambda: H.linkage(X, "centroid", "euclidean"), r)
            t_port, Zp = best_of(lambda: linkage(X, "centroid", "euclidean"), r)
            # the clustering alone, on the same condensed distances
            t_scipy_y, Zs_y = best_of(lambda: H.linkage(y, "centroid"), r)
            t_port_y, Zp_y = best_of(lambda: linkage(y, "centroid"), r)
            equal = all(
                np.array_equal(a[:, [0, 1, 3]], b[:, [0, 1, 3]])
                and np.allclose(a[:, 2], b[:, 2], rtol=1e-9, atol=0)
                for a, b in ((Zs, Zp), (Zs_y, Zp_y), (Zs, Zp_y))
            )
            # one flat clustering at the median height (pyannote-like use)
            t = float(np.median(Zs[:, 2]))
            t_fs, Ts = best_of(lambda: H.fcluster(Zs, t, "distance"), 5)
            t_fp, Tp = best_of(lambda: fcluster(Zp, t, "distance"), 5)
            rows.append(
                dict(
                    data=kind,
                    n=n,
                    dim=dim,
                    pdist_s=t_pdist,
                    scipy_s=t_scipy,
                    port_s=t_port,
                    ratio=t_port / t_scipy,
                    scipy_condensed_s=t_scipy_y,
                    port_condensed_s=t_port_y,
                    ratio_condensed=t_port_y / t_scipy_y,
                    equal=bool(equal),
                    bit_identical=bool(np.array_equal(Zs, Zp)),
                    fcluster_scipy_ms=1e3 * t_fs,
                    fcluster_port_ms=1e3 * t_fp,
                    fcluster_equal=bool(np.array_equal(Ts, Tp)),
                )
            )
            print_row(rows[-1])
    return rows


def print_row(r):
    print(
        f"{r['data']:>6} n={r['n']:>6}  pdist {r['pdist_s']:6.2f}s  "
        f"scipy {r['scipy_s']:6.2f}s  port {r['port_s']:6.2f}s  "
        f"ratio {r['ratio']:4.2f}  | condensed: scipy {r['scipy_condensed_s']:6.2f}s "
        f"port {r['port_condensed_s']:6.2f}s ratio {r['ratio_condensed']:4.2f}  "
        f"| equal {r['equal']}  | fcluster {r['fcluster_scipy_ms']:.1f}/"
        f"{r['fcluster_port_ms']:.1f} ms",
        file=sys.stderr,
        flush=True,
    )


def table(rows):
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain fallback
        for r in rows:
            print_row(r)
        return
    tab = Table(
        title="centroid linkage, port vs scipy (seconds, best of runs)",
        caption="from X: pdist + clustering; condensed: clustering of the same "
        "pdist output; fcluster: distance criterion at the median height",
    )
    for col in ("data", "n", "pdist", "scipy", "port", "ratio",
                "scipy cond.", "port cond.", "ratio cond.", "equal",
                "fcluster ms scipy/port"):
        tab.add_column(col, justify="right")
    for r in rows:
        tab.add_row(
            r["data"], str(r["n"]), f"{r['pdist_s']:.2f}", f"{r['scipy_s']:.2f}",
            f"{r['port_s']:.2f}", f"{r['ratio']:.2f}",
            f"{r['scipy_condensed_s']:.2f}", f"{r['port_condensed_s']:.2f}",
            f"{r['ratio_condensed']:.2f}",
            ("bit-exact" if r["bit_identical"] else "yes") if r["equal"] else "NO",
            f"{r['fcluster_scipy_ms']:.1f} / {r['fcluster_port_ms']:.1f}"
            + ("" if r["fcluster_equal"] else " NO"),
        )
    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(tab)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000, 10000])
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--data", nargs="+", choices=sorted(DATA), default=["sphere", "blobs"])
    ap.add_argument("--repeat", type=int, default=3, help="best of, n <= 2000")
    ap.add_argument("--repeat-large", type=int, default=2, help="best of, n > 2000")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)

    rows = run(args.sizes, args.dim, args.repeat, args.repeat_large, args.seed, args.data)
    table(rows)
    if args.json:
        args.json.write_text(
            json.dumps(
                dict(
                    machine=dict(
                        platform=platform.platform(),
                        python=platform.python_version(),
                        cpus=os.cpu_count(),
                        numpy=np.__version__,
                        scipy=scipy.__version__,
                    ),
                    results=rows,
                ),
                indent=2,
            )
        )
    return 0 if all(r["equal"] and r["fcluster_equal"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
