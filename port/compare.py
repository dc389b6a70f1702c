"""Compare two dump trees stage by stage, within the tolerances of pyproject.toml.

Used by `verify.py run` / `verify.py compare` and by the tests, so every stage is
compared by the same rules: float arrays by max abs (and rel) difference against
the stage's bound, discrete arrays by mismatch count (must be 0), RTTM text
verbatim. Nothing here is specific to one stage but the configuration.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .dumps import STAGES, DumpError, DumpReader

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


@functools.lru_cache(maxsize=None)
def tolerances(path: str | Path = PYPROJECT) -> dict[str, dict]:
    """[tool.verify.stages] of pyproject.toml: {stage: {atol, chain_atol, rtol, discrete, ...}}."""
    try:
        config = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise DumpError(f"cannot read tolerances from {path}: {error}") from None
    stages = config.get("tool", {}).get("verify", {}).get("stages", {})
    missing = [s for s in STAGES if s not in stages]
    if missing:
        raise DumpError(f"{path}: [tool.verify.stages] lacks {', '.join(missing)}")
    return stages


@dataclass
class Row:
    """One compared array (or text) of one stage."""

    stage: str
    name: str
    kind: str  # "float", "discrete" or "text"
    max_abs: float = 0.0
    max_rel: float = 0.0
    mismatches: int = 0
    size: int = 0
    bound: float = 0.0
    passed: bool = True
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _is_discrete(config: dict, name: str) -> bool:
    return bool(config.get("discrete")) or any(name.endswith(n) for n in config.get("discrete_names", []))


def _config(stage: str, name: str) -> dict:
    """The stage's settings, with per-name overrides applied (a key matches the
    names ending with it, so ``in_Z`` covers ``call0_in_Z``, ``call1_in_Z``, ...)."""
    config = dict(tolerances()[stage])
    for suffix, override in config.pop("names", {}).items():
        if name.endswith(suffix):
            config.update(override)
    return config


def compare_values(stage: str, name: str, reference, candidate, chain: bool = False) -> Row:
    """Compare one reference value with a candidate under the stage's configuration."""
    config = _config(stage, name)
    if isinstance(reference, str) or isinstance(candidate, str):
        ref_lines = str(reference).splitlines()
        cand_lines = str(candidate).splitlines()
        mismatches = sum(a != b for a, b in zip(ref_lines, cand_lines)) + abs(len(ref_lines) - len(cand_lines))
        return Row(stage, name, "text", mismatches=mismatches, size=len(ref_lines), passed=mismatches == 0,
                   note="" if mismatches == 0 else f"{mismatches} of {len(ref_lines)} lines differ")
    reference = np.asarray(reference)
    candidate = np.asarray(candidate)
    if reference.shape != candidate.shape:
        return Row(stage, name, "discrete" if _is_discrete(config, name) else "float", size=reference.size,
                   passed=False, mismatches=reference.size, note=f"shape {candidate.shape} != {reference.shape}")
    size = int(reference.size)
    if _is_discrete(config, name) or (reference.dtype.kind in "iub" and candidate.dtype.kind in "iub"):
        if reference.dtype.kind == "f" or candidate.dtype.kind == "f":
            equal = (reference == candidate) | (np.isnan(reference) & np.isnan(candidate))
        else:
            equal = reference == candidate
        mismatches = int(size - np.count_nonzero(equal))
        return Row(stage, name, "discrete", mismatches=mismatches, size=size, passed=mismatches == 0,
                   note="" if mismatches == 0 else f"{mismatches} of {size} differ")

    columns = config.get("discrete_columns")
    mismatches = 0
    exact = np.zeros(reference.shape, dtype=bool)
    if columns and reference.ndim == 2:
        exact[:, columns] = True
        mismatches = int(np.count_nonzero(exact & (reference != candidate)))
    tolerated = mismatches if chain and not config.get("chain_exact", True) else 0
    a = reference.astype(np.float64)
    b = candidate.astype(np.float64)
    both_inf = np.isinf(a) & np.isinf(b) & (a == b)  # e.g. max_speakers = inf
    a[both_inf] = b[both_inf] = 0.0
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    mismatches += int(np.count_nonzero(nan_a != nan_b))
    finite = ~(nan_a | nan_b) & ~exact
    difference = np.abs(a - b)[finite]
    scale = np.abs(a)[finite]
    atol = float(config.get("chain_atol", config.get("atol", 0.0)) if chain else config.get("atol", 0.0))
    rtol = float(config.get("rtol", 0.0))
    over = int(np.count_nonzero(difference > atol + rtol * scale))
    max_abs = float(difference.max()) if difference.size else 0.0
    percentile = config.get("percentile")  # [q, bound]: the q-th percentile of |diff| must stay under bound
    percentile_note = ""
    if percentile and difference.size:
        value = float(np.percentile(difference, percentile[0]))
        if value > percentile[1]:
            percentile_note = f"{percentile[0]:g}th percentile {value:.2g} > {percentile[1]:g}"
    # relative difference where values are not ~0 (below 1e-6 of the largest it means nothing)
    floor = 1e-6 * float(scale.max()) if scale.size else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = difference / np.maximum(scale, max(floor, np.finfo(np.float64).tiny))
    max_rel = float(rel.max()) if rel.size else 0.0
    passed = over == 0 and mismatches == tolerated and not percentile_note
    note = ""
    if tolerated:
        note = f"{mismatches} exact values differ (tolerated in a chain)"
    elif mismatches:
        note = f"{mismatches} exact values differ"
    elif over:
        note = f"{over} of {size} over bound"
    elif percentile_note:
        note = percentile_note
    return Row(stage, name, "float", max_abs, max_rel, mismatches, size, atol, passed, note)


def compare_stage(reference: DumpReader, candidate: DumpReader, stage: str, chain: bool = True) -> list[Row]:
    """Every value the reference dumped for this stage, against the candidate's."""
    rows = []
    for name in reference.names(stage):
        if not candidate.has(stage, name):
            rows.append(Row(stage, name, "missing", passed=False, note="missing in candidate"))
            continue
        rows.append(compare_values(stage, name, reference.load(stage, name), candidate.load(stage, name), chain))
    return rows


def compare_trees(reference: str | Path, candidate: str | Path, chain: bool = True) -> list[Row]:
    """Compare one recording's dumps, stage by stage, in pipeline order."""
    ref = DumpReader(reference)
    cand = DumpReader(candidate)
    rows = []
    for stage in STAGES:
        rows.extend(compare_stage(ref, cand, stage, chain=chain))
    return rows


def stage_summary(rows: list[Row]) -> dict[str, dict]:
    """Per stage: worst max abs / rel, total mismatches, pass flag, names compared."""
    summary: dict[str, dict] = {}
    for row in rows:
        entry = summary.setdefault(
            row.stage, {"max_abs": 0.0, "max_rel": 0.0, "mismatches": 0, "bound": row.bound, "passed": True, "notes": []}
        )
        entry["max_abs"] = max(entry["max_abs"], row.max_abs)
        entry["max_rel"] = max(entry["max_rel"], row.max_rel)
        entry["mismatches"] += row.mismatches
        entry["bound"] = max(entry["bound"], row.bound)
        entry["passed"] &= row.passed
        if row.note:
            entry["notes"].append(f"{row.name}: {row.note}")
    return summary


def first_failure(rows: list[Row]) -> str | None:
    for row in rows:
        if not row.passed:
            return row.stage
    return None
