"""The verdict: two dump trees compared stage by stage, within the rules of pyproject.toml.

`judge(reference_dir, candidate_dir, runner=None, stages=None)` is the one judging
function `verify.py run`, `verify.py compare`, the tests and the mutation benchmark
share. It compares every name both sides dumped (the chain), judges each port stage
run alone on the reference's inputs when a stage runner is handed in (isolated), says
why a stage neither side reached was skipped, and names the first failing stage. The
stages, their names and the reasons a stage may be unreached come from the pipeline's
description (`port.vocabulary`); this module holds only the rules.

Rules (the configuration is in pyproject's [tool.verify]; nothing here is specific
to one stage):
- discrete arrays and RTTM text must be identical (mismatch count 0);
- float arrays: drift <= k * noise + floor at the maximum and at a high percentile,
  where noise is pyannote's own float32 error (reference/noise.py, stored beside the
  reference dump); the fixed absolute bounds are ceilings that always apply;
- a stage or name one side dumped and the other did not fails (a stage the
  candidate never dumped shows as "not implemented");
- linkage merges (names configured ``merge_order``) may come in another order in a
  chain only between merges whose heights differ by less than twice the measured
  height drift; each reordering is counted and shown;
- eigenvector-derived columns (names configured ``column_signs``, the PLDA features)
  are defined only up to each column's sign: the candidate's columns are aligned to
  the reference's signs first, and the flips are counted and shown;
- the reconstruction's ranking (names configured ``tie_order``: the discrete
  diarization, the segments and RTTMs made from it) may break exact ties between
  clusters' activations another way: a frame that differs passes only when the
  candidate chose as many clusters as the reference and their activations are the
  same multiset (`harness.frames.tie_order`); such frames are counted and shown.
- a stage is judged with the isolated bounds only when every input it reads from other
  stages was dumped by the candidate and equals the reference's bit for bit (or its
  manifest says ``"inputs": "reference"``); a stage missing between stages the
  candidate dumped (a hole) fails, and is named first.
"""

from __future__ import annotations

import functools
import math
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from port.dumps import DumpError, DumpReader, locate, read_noise
from port.vocabulary import ALL_STAGES, REASONS, Description, axes, for_judge
from port.vocabulary import pipeline as describe

from . import frames as grid_rules

# the tolerances: the checkout's pyproject.toml, or the copy an installed wheel carries beside this module
_HERE = Path(__file__).resolve().parent
PYPROJECT = _HERE / "pyproject.toml" if (_HERE / "pyproject.toml").is_file() else _HERE.parent / "pyproject.toml"
NOISE_FILE = "noise.json"


@functools.lru_cache(maxsize=None)
def _config_file(path: str | Path = PYPROJECT) -> dict:
    try:
        return tomllib.loads(Path(path).read_text()).get("tool", {}).get("verify", {})
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise DumpError(f"cannot read tolerances from {path}: {error}") from None


def tolerances(path: str | Path = PYPROJECT) -> dict[str, dict]:
    """[tool.verify.stages] of pyproject.toml: {stage: {atol, chain_atol, rtol, discrete, ...}}."""
    stages = _config_file(path).get("stages", {})
    missing = [s for s in ALL_STAGES if s not in stages]
    if missing:
        raise DumpError(f"{path}: [tool.verify.stages] lacks {', '.join(missing)}")
    return stages


def noise_rule(path: str | Path = PYPROJECT) -> dict:
    """[tool.verify.noise]: k, floor, percentile (see pyproject for the measurements)."""
    return {"k": 3.0, "floor_ulps": 4.0, "percentile": 99.0, "max_chunks": 8, **_config_file(path).get("noise", {})}


def export_bounds(path: str | Path = PYPROJECT) -> dict:
    """[tool.verify.export]: the measured ONNX Runtime vs PyTorch bounds of the export gate."""
    bounds = _config_file(path).get("export", {})
    if not {"segmentation_atol", "embedding_atol"} <= set(bounds):
        raise DumpError(f"{path}: [tool.verify.export] needs segmentation_atol and embedding_atol")
    return bounds


def parse_stages(text: str | None, pipeline: str | None = None) -> list[str] | None:
    """'01-05,08' -> the stage folder names of `pipeline` (ranges and lists, numbers or full names)."""
    if not text:
        return None
    order = describe(pipeline).stage_names
    numbers = {s[:2]: s for s in order}
    chosen: list[str] = []
    for part in text.replace(" ", "").split(","):
        if part in order:
            chosen.append(part)
            continue
        match = re.fullmatch(r"(\d{1,2})(?:-(\d{1,2}))?", part)
        if not match:
            raise ValueError(f"--stages: cannot read {part!r} (want e.g. 01-05,08)")
        first, last = int(match[1]), int(match[2] or match[1])
        if not (1 <= first <= last <= len(order)):
            raise ValueError(f"--stages: {part!r} is outside 01-{len(order):02d}")
        chosen.extend(numbers[f"{n:02d}"] for n in range(first, last + 1))
    return [s for s in order if s in chosen]


# ----------------------------------------------------------------------------- rows
@dataclass
class Row:
    """One compared array (or text) of one stage."""

    stage: str
    name: str
    kind: str  # "float", "discrete", "text", "missing" (candidate lacks it) or "extra" (only the candidate has it)
    max_abs: float = 0.0
    max_rel: float = 0.0
    mismatches: int = 0
    size: int = 0
    bound: float = 0.0
    passed: bool = True
    note: str = ""
    over: int = 0  # elements over the bound (or differing, for exact values)
    where: dict | None = None  # the worst (or first differing) element, in the stage's own terms
    percentile_drift: float | None = None
    noise: float | None = None  # pyannote's own float32 noise (max) on this name
    noise_percentile: float | None = None
    noise_ratio: float | None = None  # drift / noise at the max
    reordered: int = 0  # linkage merges that came in another order (chain only)
    flipped: int = 0  # eigenvector columns whose sign the candidate has the other way round
    tied: int = 0  # frames where the candidate broke an exact tie another valid way (tie order)
    tie_seconds: float = 0.0  # those frames, in seconds

    def as_dict(self) -> dict:
        return asdict(self)


def _is_discrete(config: dict, name: str) -> bool:
    return bool(config.get("discrete")) or any(name.endswith(n) for n in config.get("discrete_names", []))


def align_column_signs(a: np.ndarray, b: np.ndarray) -> int:
    """Flip, in place, the columns of `b` whose sign disagrees with `a`'s (each column an
    eigenvector's coordinate, defined up to its sign: `column_signs`); how many flipped."""
    flips = np.nansum(np.nan_to_num(a) * np.nan_to_num(b), axis=0) < 0
    b[:, flips] *= -1.0
    return int(flips.sum())


def column_signs(stage: str, name: str) -> bool:
    """Whether the verdict compares `stage`/`name` up to each column's sign."""
    return bool(_config(stage, name).get("column_signs"))


def _config(stage: str, name: str) -> dict:
    """The stage's settings, with per-name overrides applied (a key matches the
    names ending with it, so ``in_Z`` covers ``call0_in_Z``, ``call1_in_Z``, ...)."""
    config = dict(tolerances()[stage])
    for suffix, override in config.pop("names", {}).items():
        if name.endswith(suffix):
            config.update(override)
    return config


def _merges(Z: np.ndarray) -> list[frozenset]:
    """The leaves each linkage merge joins (the cluster it creates), merge by merge."""
    n = len(Z) + 1
    clusters: list[frozenset] = [frozenset([i]) for i in range(n)]
    for a, b in Z[:, :2].astype(np.int64):
        clusters.append(clusters[a] | clusters[b])
    return clusters[n:]


def _match_merges(reference: np.ndarray, candidate: np.ndarray) -> tuple[np.ndarray | None, int]:
    """The candidate's merges put in the reference's order (by the cluster each
    creates), or None and the first reference merge the candidate never makes."""
    try:
        ref, cand = _merges(reference), _merges(candidate)
    except (IndexError, ValueError):
        return None, 0
    position = {cluster: j for j, cluster in enumerate(cand)}
    order = []
    for i, cluster in enumerate(ref):
        if cluster not in position:
            return None, i
        order.append(position[cluster])
    return np.asarray(order), 0


def _where(stage, name, shape, flat_index, reference_reader) -> dict | None:
    if not shape:
        return None
    index = np.unravel_index(int(flat_index), shape)
    if reference_reader is None:  # no dump to read times from: the indices only
        names = axes(stage, name) or tuple(f"axis{i}" for i in range(len(index)))
        return {axis: int(i) for axis, i in zip(names, index)}
    try:
        return locate(stage, name, index, reference_reader)
    except (DumpError, OSError, ValueError, IndexError):
        return None


def _real_values(function):
    """compare_values on real numbers only (a complex candidate would pass by losing its imaginary
    part in astype(float64)), with numpy's warnings about NaN and inf silenced: the row reports them."""
    @functools.wraps(function)
    def checked(stage, name, reference, candidate, *args, **kwargs):
        for side, value in (("reference", reference), ("candidate", candidate)):
            kind = getattr(value, "dtype", np.asarray(value).dtype if not isinstance(value, str) else None)
            if kind is not None and np.dtype(kind).kind not in "biuf":
                raise DumpError(f"{stage}/{name}: the {side}'s values are {np.dtype(kind)}, not real numbers")
        with np.errstate(all="ignore"):
            return function(stage, name, reference, candidate, *args, **kwargs)
    return checked


@_real_values
def compare_values(stage: str, name: str, reference, candidate, chain: bool = False,
                   noise: dict | None = None, reader: DumpReader | None = None,
                   candidate_reader: DumpReader | None = None) -> Row:
    """Compare one reference value with a candidate under the stage's configuration.

    `noise`: pyannote's own float32 noise on this name ({"max": .., "p<q>": ..}), when
    measured; `reader`: the reference dump, to say where a difference is (and, for
    ``tie_order`` names, the activations that were ranked); `candidate_reader`: the
    candidate's dump, for the labels of its RTTM.
    """
    config = _config(stage, name)
    tie_rule = config.get("tie_order")
    if tie_rule and reader is not None and not _identical(reference, candidate):
        row = _tie_order_row(stage, name, reference, candidate, str(tie_rule), reader, candidate_reader)
        if row is not None:
            return row
    scores = config.get("assignment_ties")
    if scores and reader is not None and not _identical(reference, candidate):
        row = _assignment_row(stage, name, reference, candidate, str(scores), reader)
        if row is not None:
            return row
    if isinstance(reference, str) or isinstance(candidate, str):
        ref_lines = str(reference).splitlines()
        cand_lines = str(candidate).splitlines()
        differ = [i for i, (a, b) in enumerate(zip(ref_lines, cand_lines)) if a != b]
        mismatches = len(differ) + abs(len(ref_lines) - len(cand_lines))
        first = differ[0] if differ else min(len(ref_lines), len(cand_lines))
        where = None
        if mismatches:
            where = {"line": first + 1}
            fields = (ref_lines[first] if first < len(ref_lines) else "").split()
            if len(fields) > 3:  # RTTM: SPEAKER uri channel start duration ...
                try:
                    where["time"] = float(fields[3])
                except ValueError:
                    pass
        return Row(stage, name, "text", mismatches=mismatches, size=len(ref_lines), passed=mismatches == 0,
                   over=mismatches, where=where,
                   note="" if mismatches == 0 else f"{mismatches} of {len(ref_lines)} lines differ")
    reference = np.asarray(reference)
    candidate = np.asarray(candidate)
    discrete = _is_discrete(config, name) or (reference.dtype.kind in "iub" and candidate.dtype.kind in "iub")
    if reference.shape != candidate.shape:
        return Row(stage, name, "shape", size=reference.size, passed=False,
                   mismatches=reference.size, over=reference.size,
                   note=f"shape {candidate.shape} vs {reference.shape} (candidate vs reference)")
    size = int(reference.size)
    if discrete:
        if reference.dtype.kind == "f" or candidate.dtype.kind == "f":
            equal = (reference == candidate) | (np.isnan(reference) & np.isnan(candidate))
        else:
            equal = reference == candidate
        differ = np.flatnonzero(~equal)
        mismatches = int(differ.size)
        return Row(stage, name, "discrete", mismatches=mismatches, size=size, passed=mismatches == 0,
                   over=mismatches, where=_where(stage, name, reference.shape, differ[0], reader) if mismatches else None,
                   note="" if mismatches == 0 else f"{mismatches} of {size} differ")

    a = reference.astype(np.float64)
    b = candidate.astype(np.float64)
    reordered, reorder_note = 0, ""
    if chain and config.get("merge_order") and a.ndim == 2 and a.shape[1] == 4:
        order, missing = _match_merges(a, b)
        if order is None:
            return Row(stage, name, "float", size=size, passed=False, mismatches=1, over=1,
                       where=_where(stage, name, a.shape, missing * 4, reader),
                       note=f"merge {missing} of the reference is never made by the candidate (other clusters)")
        b = b[order]
        moved = np.flatnonzero(order != np.arange(len(order)))
        reordered = int(moved.size)
        if reordered:
            drift = float(np.max(np.abs(a[:, 2] - b[:, 2])))
            gaps = np.abs(a[moved, 2] - a[order[moved], 2])
            # two merges can swap only if their heights are closer than twice the drift
            if float(gaps.max()) > 2 * drift:
                worst = int(moved[np.argmax(gaps)])
                return Row(stage, name, "float", size=size, passed=False, mismatches=reordered, over=reordered,
                           reordered=reordered, where=_where(stage, name, a.shape, worst * 4, reader),
                           note=f"{reordered} merges reordered, heights {gaps.max():.1e} apart > 2 x drift {drift:.1e}")
            reorder_note = f"{reordered} merges reordered (heights {gaps.max():.1e} apart <= 2 x drift {drift:.1e})"
        b[:, :2] = a[:, :2]  # same clusters: the ids are the order's, already checked

    flipped_note, flipped = "", 0
    if config.get("column_signs") and a.ndim == 2 and a.shape[1] > 0:
        flipped = align_column_signs(a, b)
        if flipped:
            flipped_note = f"{flipped} of {a.shape[1]} columns sign-flipped (aligned before comparing)"

    columns = config.get("discrete_columns")
    exact = np.zeros(a.shape, dtype=bool)
    if columns and a.ndim == 2:
        exact[:, columns] = True
    exact_differ = np.flatnonzero((exact & (a != b)).ravel())
    both_inf = np.isinf(a) & np.isinf(b) & (a == b)  # e.g. max_speakers = inf
    a[both_inf] = b[both_inf] = 0.0
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    nonfinite = np.flatnonzero(((nan_a != nan_b) | (np.isinf(a) != np.isinf(b)) | (np.isinf(a) & (a != b))).ravel())
    finite = ~(nan_a | nan_b | np.isinf(a) | np.isinf(b)) & ~exact
    difference = np.where(finite, np.abs(a - b), 0.0)
    scale = np.abs(a)
    atol = float(config.get("chain_atol", config.get("atol", 0.0)) if chain else config.get("atol", 0.0))
    rtol = float(config.get("rtol", 0.0))
    bound = atol + rtol * scale  # the fixed ceiling
    rule = noise_rule()
    q = float(rule["percentile"])
    values = difference[finite]
    percentile_drift = float(np.percentile(values, q)) if values.size else 0.0
    notes = []
    noise_max = noise_p = ratio = None
    allowed = atol
    if noise is not None and noise.get("max") is not None:
        noise_max, noise_p = float(noise["max"]), float(noise.get(f"p{q:g}", noise["max"]))
        # floor: a few float32 roundings of the stage's largest value, so that noise 0
        # (e.g. no resampling: pyannote copies) still allows the port's own rounding
        floor = float(rule["floor_ulps"]) * float(np.finfo(np.float32).eps) * float(scale[finite].max(initial=0.0))
        # with noise measured, the fixed bound is the stage's `ceiling` (a cap far above any
        # recording's noise); atol / chain_atol are the bounds when no noise was measured
        ceiling = float(config.get("ceiling", atol))
        allowed = min(ceiling, rule["k"] * noise_max + floor)
        allowed_p = rule["k"] * noise_p + floor
        ratio = float(values.max() / noise_max) if values.size and noise_max > 0 else (0.0 if not values.size or values.max() == 0 else math.inf)
        if percentile_drift > allowed_p:
            notes.append(f"p{q:g} drift {percentile_drift:.2g} > {rule['k']:g} x noise {noise_p:.2g} + {floor:.1g}")
        bound = np.full(a.shape, allowed)
    else:
        percentile = config.get("percentile")  # no noise measured: the fixed percentile ceiling
        if percentile and values.size:
            value = float(np.percentile(values, percentile[0]))
            if value > percentile[1]:
                notes.append(f"{percentile[0]:g}th percentile {value:.2g} > {percentile[1]:g}")
    over_mask = finite & (difference > bound)
    over = int(np.count_nonzero(over_mask)) + int(nonfinite.size) + int(exact_differ.size)
    max_abs = float(values.max()) if values.size else 0.0
    if nonfinite.size:  # NaN or inf on one side only: say so, never "max abs 0"
        max_abs = math.nan if np.any((nan_a != nan_b).ravel()[nonfinite]) else math.inf
        notes.insert(0, f"{nonfinite.size} values NaN/inf on one side only")
    if exact_differ.size:
        notes.insert(0, f"{exact_differ.size} exact values differ")
    if over_mask.any():
        notes.insert(0, f"{int(np.count_nonzero(over_mask))} of {size} over bound")
    # relative difference where values are not ~0 (below 1e-6 of the largest it means nothing)
    floor_rel = 1e-6 * float(scale[finite].max()) if values.size else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = difference[finite] / np.maximum(scale[finite], max(floor_rel, np.finfo(np.float64).tiny))
    max_rel = float(rel.max()) if rel.size else 0.0
    passed = not notes
    where = None
    if not passed:
        if nonfinite.size:
            worst = nonfinite[0]
        elif exact_differ.size:
            worst = exact_differ[0]
        else:
            worst = int(np.argmax(np.where(finite, difference - bound, -np.inf)))
        where = _where(stage, name, a.shape, worst, reader)
    if reorder_note:
        notes.append(reorder_note)
    if flipped_note:
        notes.append(flipped_note)
    return Row(stage, name, "float", max_abs, max_rel, int(exact_differ.size + nonfinite.size), size,
               float(allowed), passed, "; ".join(notes), over, where, percentile_drift,
               noise_max, noise_p, ratio, reordered, flipped)


# ----------------------------------------------------------------------------- tie order
def _identical(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        return bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))
    return bool(np.all(a == b))


def _call_of(name: str) -> str | None:
    match = re.match(r"(call\d+)_", name)
    return match[1] if match else None


def _rttm_labels(reader: DumpReader | None, annotation: str) -> dict[str, int] | None:
    """pyannote's renaming as a dump says it: SPEAKER_<i> is the i-th cluster of the
    diarization's segments in `Annotation.labels()` order (sorted as strings)."""
    if reader is None or not reader.has(annotation, "call0_out_segments"):
        return None
    segments = np.asarray(reader.load(annotation, "call0_out_segments"), dtype=np.float64).reshape(-1, 3)
    clusters = sorted({int(k) for k in segments[:, 2]}, key=str)
    return {f"SPEAKER_{i:02d}": k for i, k in enumerate(clusters)}


def _rttm_format(reference: str, candidate: str) -> str | None:
    """Where the candidate's RTTM lines are not written as pyannote writes them (fields
    other than the times and the label, 3-decimal times, lines in time order)."""
    template = None
    for line in reference.splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[0] == "SPEAKER":
            template = fields[:3] + fields[5:7] + fields[8:]
            break
    previous = (-math.inf, -math.inf)
    for number, line in enumerate(candidate.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if template is not None and fields[:3] + fields[5:7] + fields[8:] != template:
            return f"line {number} is not written as pyannote writes it ({' '.join(template[:3])} ...)"
        if len(fields) < 8 or not all(re.fullmatch(r"\d+\.\d{3}", f) for f in fields[3:5]):
            return f"line {number}: times are not written with 3 decimals as pyannote writes them"
        key = (float(fields[3]), float(fields[3]) + float(fields[4]))
        if key < previous:
            return f"line {number} is out of time order"
        previous = key
    return None


def _as_frames(value, grid: "grid_rules.Grid", columns: int, labels: dict[str, int] | None, what: str) -> np.ndarray:
    """A diarization on pyannote's frame grid: (frames, clusters) bool, from a discrete
    array, a segments array [start, end, cluster] or RTTM text."""
    if isinstance(value, str):
        if labels is None:
            raise grid_rules.TurnsError(f"{what}: no segments to tell which cluster each label is")
        turns = []
        for turn in grid_rules.parse_rttm(value, what):
            if turn.label not in labels or labels[turn.label] >= columns:
                raise grid_rules.TurnsError(f"{what}: line {turn.line}: label {turn.label!r} names no cluster "
                                            f"of the diarization ({', '.join(labels) or 'none'})")
            turns.append((turn.start, turn.end, labels[turn.label]))
        return grid_rules.raster(turns, grid, columns, grid_rules.tolerance(grid))
    value = np.asarray(value)
    if value.ndim == 2 and value.shape == (grid.frames, columns):
        if not np.all((value == 0) | (value == 1)):
            raise grid_rules.TurnsError(f"{what}: values other than 0 and 1")
        return value > 0.5
    if value.ndim == 2 and value.shape[1] == 3:
        segments = value.astype(np.float64)
        if not np.all(np.isfinite(segments)):
            raise grid_rules.TurnsError(f"{what}: NaN or inf in the segments")
        clusters = segments[:, 2]
        if np.any(clusters != np.round(clusters)) or np.any((clusters < 0) | (clusters >= columns)):
            raise grid_rules.TurnsError(f"{what}: a segment's cluster is not one of 0..{columns - 1}")
        middles = grid.middles()
        for t in segments[:, :2].ravel():  # boundaries are frame middles, as to_annotation makes them
            i = min(max(int(np.searchsorted(middles, t)), 0), len(middles) - 1)
            if min(abs(middles[i] - t), abs(middles[max(i - 1, 0)] - t)) > 1e-6:
                raise grid_rules.TurnsError(f"{what}: boundary {t:.6f} s is off pyannote's frame grid")
        return grid_rules.raster([(a, b, int(k)) for a, b, k in segments], grid, columns, 1e-6)
    raise grid_rules.TurnsError(f"{what}: shape {value.shape} is neither ({grid.frames}, {columns}) nor (n, 3)")


def _tie_order_row(stage: str, name: str, reference, candidate, rule: str, reader: DumpReader,
                   candidate_reader: DumpReader | None) -> Row | None:
    """`tie_order` names: the candidate's diarization against the reference's on the frame
    grid, every differing frame judged by `harness.frames.tie_order` on the activations
    `rule` names (``<stage>/call<k>_out_activations``). None when the reference dump has
    no activations (made before they were dumped: the exact comparison applies)."""
    source, _, pattern = rule.partition("/")
    call = _call_of(name)
    activations_name = pattern.replace("call<k>", call) if "<k>" in pattern and call else pattern
    if not reader.has(source, activations_name) or not reader.has(source, "out_frames"):
        return None
    activations = np.asarray(reader.load(source, activations_name), dtype=np.float64)
    start, duration, step = (float(v) for v in np.asarray(reader.load(source, "out_frames")).ravel()[:3])
    grid = grid_rules.Grid(start, duration, step, activations.shape[0])
    columns = activations.shape[1]
    kind = "text" if isinstance(reference, str) else "discrete"
    labels = _rttm_labels(reader, stage)
    try:
        ref = _as_frames(reference, grid, columns, labels, f"reference {stage}/{name}")
    except grid_rules.TurnsError:
        return None  # the reference's own value does not fit its grid: compare exactly
    try:
        cand = _as_frames(candidate, grid, columns, _rttm_labels(candidate_reader, stage) or labels,
                          f"candidate {stage}/{name}")
    except grid_rules.TurnsError as error:
        return Row(stage, name, kind, mismatches=1, size=grid.frames, passed=False, over=1, note=str(error))
    check = grid_rules.tie_order(ref, cand, activations)
    if check.differing == 0:
        return None  # the same frames: what differs is not the diarization (compared exactly)
    seconds = check.tied * step
    if check.passed:
        problem = _rttm_format(reference, candidate) if kind == "text" else None
        if problem:
            return Row(stage, name, kind, mismatches=1, size=grid.frames, passed=False, over=1,
                       tied=check.tied, tie_seconds=seconds, note=problem)
        return Row(stage, name, kind, size=grid.frames, tied=check.tied, tie_seconds=seconds,
                   note=f"identical up to tie order ({check.tied} frames, {seconds:.2f} s)")
    frame = check.first_bad
    bad = check.differing - check.tied
    where = {"output_frame": frame, "time": round(grid.time(frame), 3),
             "candidate_clusters": grid_rules.clusters_at(cand, frame),
             "reference_clusters": grid_rules.clusters_at(ref, frame)}
    return Row(stage, name, kind, mismatches=bad, size=grid.frames, passed=False, over=bad, where=where,
               tied=check.tied, tie_seconds=seconds,
               note=f"{bad} frame(s) differ beyond tie order (first at {grid.time(frame):.3f} s: clusters "
                    f"{where['candidate_clusters']} vs the reference's {where['reference_clusters']}); "
                    f"{check.tied} other frame(s) are tie order")


def _assignment_row(stage: str, name: str, reference, candidate, scores_name: str,
                    reader: DumpReader) -> Row | None:
    """`assignment_ties` names (hard clusters): a (chunk, speaker) whose cluster differs
    passes only when the reference's score for the candidate's cluster equals the score of
    the reference's, or the speaker scores the same for every cluster (inactive speakers
    all score ``min - 1``: any solver of the assignment may give them any free cluster, or
    none when clusters are fewer than speakers); the chunk keeps as many speakers assigned,
    and distinct clusters where the reference's are (constrained_argmax assigns one
    speaker per cluster). None when the reference has no scores to judge by."""
    if not reader.has(stage, scores_name):
        return None
    ref, cand = np.asarray(reference), np.asarray(candidate)
    soft = np.asarray(reader.load(stage, scores_name), dtype=np.float64)
    if ref.shape != cand.shape or soft.shape[:2] != ref.shape or cand.dtype.kind not in "iuf":
        return None
    if not np.all(np.isfinite(cand)) or np.any(cand != np.round(cand)):
        return None
    if np.any(np.isnan(soft)):  # as constrained_argmax sees them
        soft = np.nan_to_num(soft, nan=np.nanmin(soft) if np.any(np.isfinite(soft)) else 0.0)
    ref, cand = ref.astype(np.int64), cand.astype(np.int64)
    clusters = soft.shape[2]
    tied, first_bad, why = 0, None, ""
    for c in np.flatnonzero(np.any(ref != cand, axis=1)):
        assigned_ref = ref[c][ref[c] >= 0]
        problem = ""
        for s_ in np.flatnonzero(ref[c] != cand[c]):
            a, b = int(ref[c, s_]), int(cand[c, s_])
            flat = bool(np.all(soft[c, s_] == soft[c, s_, 0]))  # every cluster scores the same: any is optimal
            if b != -2 and not 0 <= b < clusters:
                problem = f"cluster {b} is none of 0..{clusters - 1}"
            elif (a < 0 or b < 0) and not flat:
                problem = f"cluster {b} where the reference has {a} (assigned where it is not, or the other way)"
            elif a >= 0 and b >= 0 and soft[c, s_, b] != soft[c, s_, a]:
                problem = f"cluster {b} scores {soft[c, s_, b]:.6g}, the reference's {a} {soft[c, s_, a]:.6g}"
            if problem:
                first_bad, why = (int(c), int(s_), a, b), problem
                break
            tied += 1
        if problem:
            break
        assigned = cand[c][cand[c] >= 0]
        if len(set(assigned_ref.tolist())) == len(assigned_ref) and len(set(assigned.tolist())) != len(assigned):
            first_bad, why = (int(c), int(np.flatnonzero(ref[c] != cand[c])[0]), -1, -1), \
                "two speakers of the chunk share a cluster (the assignment gives each its own)"
            break
        if len(assigned) != len(assigned_ref):
            first_bad, why = (int(c), int(np.flatnonzero(ref[c] != cand[c])[0]), -1, -1), \
                f"{len(assigned)} speakers of the chunk assigned, the reference assigns {len(assigned_ref)}"
            break
    size = int(ref.size)
    if first_bad is None:
        return Row(stage, name, "discrete", size=size, tied=tied,
                   note=f"identical up to assignment ties ({tied} speaker(s) given another cluster of equal score)")
    chunk, speaker, a, b = first_bad
    where = _where(stage, name, ref.shape, chunk * ref.shape[1] + speaker, reader) or {}
    mismatches = int(np.count_nonzero(ref != cand))
    return Row(stage, name, "discrete", mismatches=mismatches, size=size, passed=False, over=mismatches, where=where,
               tied=tied, note=f"{mismatches} of {size} differ; chunk {chunk}, speaker {speaker}: {why}")


# ----------------------------------------------------------------------------- stages
def _names(reader: DumpReader, stage: str, outputs_only: bool = False) -> list[str]:
    names = reader.names(stage)
    return [n for n in names if n.startswith("out_") or "_out_" in n] if outputs_only else names


def is_input(name: str) -> bool:
    """An echoed input: ``in_<x>`` or ``call<k>_in_<x>`` (a value the stage was given, dumped beside its outputs)."""
    return re.match(r"^((call|iter)\d+_)?in_", name) is not None


def compare_stage(reference: DumpReader, candidate: DumpReader, stage: str, chain: bool = True,
                  noise: dict | None = None, declared: set[str] | frozenset = frozenset()) -> list[Row]:
    """Every value either side dumped for this stage: names only one side has fail, but
    for names the candidate's manifest declares not implemented (`declared`) and echoed
    inputs (``in_*``) the candidate did not dump: the reference's own are used."""
    rows = []
    noise = noise or {}
    for name in reference.names(stage):
        if not candidate.has(stage, name):
            if name in declared:
                rows.append(Row(stage, name, "not implemented", note="not implemented (declared in the candidate's manifest)"))
            elif is_input(name):
                rows.append(Row(stage, name, "echoed", note="not dumped by the candidate: the reference's own input used"))
            elif for_judge(stage, name, reference.pipeline):
                rows.append(Row(stage, name, "for judge", note="the reference's, for the judge: not asked of a candidate"))
            else:
                rows.append(Row(stage, name, "missing", passed=False, note="missing in candidate"))
            continue
        rows.append(compare_values(stage, name, reference.load(stage, name), candidate.load(stage, name), chain,
                                   noise=noise.get(name), reader=reference, candidate_reader=candidate))
    for name in candidate.names(stage):
        if name not in reference.names(stage):
            rows.append(Row(stage, name, "extra", passed=False, note="only in candidate (the reference has no such name)"))
    return rows


def compare_trees(reference: str | Path, candidate: str | Path, chain: bool = True) -> list[Row]:
    """Compare one recording's dumps, stage by stage, in pipeline order (every row of `judge`'s chain)."""
    return judge(reference, candidate).chain


def _silence(reference: DumpReader) -> str | None:
    if reference.has("05-count", "out_count") and not np.any(np.asarray(reference.load("05-count", "out_count"))):
        return REASONS["silence"]
    return None


def _few_embeddings(reference: DumpReader) -> str | None:
    if reference.has("09-filter", "out_embeddings"):
        kept = np.asarray(reference.load("09-filter", "out_embeddings")).shape[0]
        if kept < 2:
            return f"{kept} embedding(s) after filtering, fewer than 2: pyannote skips the clustering proper"
    return None


def _one_cluster(reference: DumpReader) -> str | None:
    for stage in reference.stages():
        for name in ("in_max_clusters", "in_num_clusters"):
            if stage.endswith("-assign") and reference.has(stage, name) and float(reference.load(stage, name)) == 1:
                return f"{name[3:]} = 1: pyannote skips clustering"
    return None


def _given(reference: DumpReader) -> str | None:
    if reference.manifest.get("given"):
        return REASONS["given"]
    return None


# the rule behind each reason a pipeline description names (port.vocabulary.REASONS):
# each reads the reference's own dumps, so a stage is excused only when pyannote's
# data says why
REASON_RULES = {"silence": _silence, "few_embeddings": _few_embeddings, "one_cluster": _one_cluster, "given": _given}


def unreached_reason(reference: DumpReader, stage: str) -> str | None:
    """Why pyannote legitimately never reached `stage`, derived from its dumps (None: no reason)."""
    description = describe(reference.pipeline)
    if not description.has(stage):
        return None
    for reason in description.stage(stage).unreached:
        found = REASON_RULES[reason](reference)
        if found:
            return found
    return None


@dataclass
class StageVerdict:
    stage: str
    status: str  # "pass", "partial", "fail", "not implemented", "not reached", "excluded"
    reason: str = ""
    chain: list[Row] = field(default_factory=list)
    isolated: list[Row] = field(default_factory=list)
    bounds: str = ""  # "chain" or "isolated": which bounds judged the candidate's dumps
    bounds_reason: str = ""  # why (the manifest's "inputs", or inputs equal the reference's bit for bit)
    declared: bool = False  # "not implemented" and declared so in the candidate's manifest

    @property
    def passed(self) -> bool:
        return self.status in ("pass", "partial", "not reached", "excluded") or (
            self.status == "not implemented" and self.declared)

    @property
    def not_implemented(self) -> list[str]:
        """Declared omissions: the whole stage, or its names the candidate did not produce."""
        if self.status == "not implemented" and self.declared:
            return [self.stage]
        return [f"{r.stage}/{r.name}" for r in self.chain + self.isolated if r.kind == "not implemented"]

    @property
    def failing(self) -> list[Row]:
        return [r for r in self.isolated + self.chain if not r.passed]

    def as_dict(self) -> dict:
        return {"stage": self.stage, "status": self.status, "reason": self.reason, "passed": self.passed,
                "bounds": self.bounds, "bounds_reason": self.bounds_reason, "declared": self.declared,
                "not_implemented": self.not_implemented,
                "chain": [r.as_dict() for r in self.chain], "isolated": [r.as_dict() for r in self.isolated]}


@dataclass
class Verdict:
    """One recording's verdict: per stage, the chain rows, the isolated rows, a status."""

    recording: str
    stages: dict[str, StageVerdict]
    noise: str = ""  # where the noise came from, or why there is none
    pipeline: str = "3.1"
    coverage: dict = field(default_factory=dict)  # the branches of pyannote's code the recording exercised
    warnings: list[str] = field(default_factory=list)  # about the candidate's manifest, the two platforms
    platforms: dict = field(default_factory=dict)  # where each side ran, as its manifest says

    @property
    def chain(self) -> list[Row]:
        """Every chain row; a failing stage with nothing compared gets one row saying why."""
        rows = []
        for s in self.stages.values():
            rows.extend(s.chain)
            if not s.passed and not s.chain and not s.isolated:
                rows.append(Row(s.stage, "*", "missing", passed=False, note=f"{s.status}: {s.reason}"))
        return rows

    @property
    def isolated(self) -> list[Row]:
        return [r for s in self.stages.values() for r in s.isolated]

    @property
    def passed(self) -> bool:
        return all(s.passed for s in self.stages.values())

    @property
    def first_failure(self) -> str | None:
        """The first stage whose isolated check fails (the culprit: no drift from
        earlier stages), else the first stage that fails on what the candidate dumped;
        a stage the candidate never dumped is named only when nothing else fails, but for a
        hole (a stage missing between stages it dumped), which is named first."""
        for stage in self.stages.values():
            if stage.status == "missing":
                return stage.stage
        for stage in self.stages.values():
            if any(not r.passed for r in stage.isolated):
                return stage.stage
        for stage in self.stages.values():
            if stage.status == "fail":
                return stage.stage
        for stage in self.stages.values():
            if not stage.passed:
                return stage.stage
        return None

    @property
    def not_implemented(self) -> list[str]:
        """Stages the candidate never dumped (declared or not), holes included."""
        return [s.stage for s in self.stages.values() if s.status in ("not implemented", "missing")]

    @property
    def holes(self) -> list[str]:
        return [s.stage for s in self.stages.values() if s.status == "missing"]

    @property
    def ties(self) -> dict[str, dict]:
        """Per stage/name judged by the tie-order rule and differing only in tie order:
        {"<stage>/<name>": {"frames": n, "seconds": t}}."""
        return {f"{r.stage}/{r.name}": {"frames": r.tied, "seconds": r.tie_seconds}
                for s in self.stages.values() for r in s.chain + s.isolated
                if r.tied and r.passed and _config(r.stage, r.name).get("tie_order")}

    @property
    def assignment_ties(self) -> dict[str, int]:
        """Per stage/name: speakers given another cluster of exactly the reference's score."""
        return {f"{r.stage}/{r.name}": r.tied for s in self.stages.values() for r in s.chain + s.isolated
                if r.tied and r.passed and _config(r.stage, r.name).get("assignment_ties")}

    @property
    def declared(self) -> list[str]:
        """What the candidate's manifest declares not implemented and the candidate did not produce."""
        return [n for s in self.stages.values() for n in s.not_implemented]

    def as_dict(self) -> dict:
        return {"name": self.recording, "pipeline": self.pipeline, "passed": self.passed,
                "first_failure": self.first_failure,
                "not_implemented": self.not_implemented, "declared_not_implemented": self.declared,
                "noise_source": self.noise, "coverage": self.coverage, "warnings": self.warnings,
                "holes": self.holes, "tie_order": self.ties, "assignment_ties": self.assignment_ties,
                "platforms": self.platforms,
                "stages": [s.as_dict() for s in self.stages.values()]}


def load_noise(reference: DumpReader) -> tuple[dict, str]:
    """pyannote's own float32 noise stored beside the reference dump (reference/noise.py),
    when it was measured on the same audio and models; ({}, why not) otherwise."""
    path = reference.path / NOISE_FILE
    if not (path.exists() or path.is_symlink()):  # anything else there is read, and refused when not a file
        return {}, "no noise measured (fixed ceilings only)"
    stored = read_noise(path)  # checked (port.dumps.check_noise): a damaged noise.json is one DumpError line
    for key in ("audio_sha256", "segmentation_sha256", "embedding_sha256"):
        if stored.get(key) != reference.manifest.get(key):
            return {}, f"{path}: measured on other {key.split('_')[0]} (fixed ceilings only)"
    return stored.get("stages", {}), f"pyannote float32 vs float64, {stored.get('chunks_note', 'all chunks')}"


def check_pipelines(reference: DumpReader, candidate: DumpReader) -> Description:
    """The pipeline both dumps were made with; one line (DumpError) when they differ."""
    if reference.pipeline != candidate.pipeline:
        raise DumpError(
            f"{candidate.path}: a {candidate.pipeline} dump cannot be judged against a {reference.pipeline} "
            f"reference ({reference.path}); rerun one side with --pipeline {reference.pipeline}"
        )
    try:
        return describe(reference.pipeline)
    except KeyError as error:
        raise DumpError(f"{reference.path}: {error.args[0]}") from None


def check_candidate(reference: DumpReader, candidate: DumpReader) -> None:
    """Refuse a candidate made from other audio than the reference, with advice that fits
    who made it: the port (side ``port``, made by ``verify.py run``) or a foreign port."""
    want, have = reference.manifest.get("audio_sha256"), candidate.manifest.get("audio_sha256")
    if want is None or have == want:
        return
    if candidate.manifest.get("side") == "port":
        candidate.check({"audio_sha256": want})  # stale dump of verify.py run: its own advice
    raise DumpError(
        f"{candidate.path}: the candidate was made from other audio than the reference "
        f"(audio_sha256 {str(have)[:12]} != {str(want)[:12]}): dump it from the same file "
        f"({reference.manifest.get('audio') or reference.manifest.get('uri') or reference.path.name})"
    )


# the platform keys that, when they differ between the two sides, can change pyannote's
# result (numpy's tie order, BLAS rounding): the verdict warns on these
PLATFORM_KEYS = ("machine", "cpu", "simd", "numpy", "blas")


def platform_differences(a, b) -> list[str]:
    """The `PLATFORM_KEYS` on which two recorded platforms differ ("key: a vs b"); none
    when either side recorded none (a writer in another language may leave it out)."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return []
    return [f"{key} {a.get(key)} vs {b.get(key)}" for key in PLATFORM_KEYS
            if key in a and key in b and a.get(key) != b.get(key)]


def platform_summary(info) -> str:
    """One line: "x86_64, AMD EPYC, SIMD X86_V3 X86_V4, numpy 2.4.6, openblas 0.3.31 Haswell"."""
    if not isinstance(info, dict) or not info:
        return "not recorded"
    parts = [str(info.get(k)) for k in ("machine", "cpu") if info.get(k)]
    if info.get("simd"):
        parts.append(f"SIMD {info['simd']}")
    parts += [f"{k} {info[k]}" for k in ("numpy", "onnxruntime", "torch", "pyannote.audio") if info.get(k)]
    if info.get("blas"):
        parts.append(f"BLAS {info['blas']}")
    return ", ".join(parts)


def platform_warnings(platforms: dict) -> list[str]:
    differ = platform_differences(platforms.get("reference"), platforms.get("candidate"))
    if not differ:
        return []
    return [f"the two sides ran on different platforms ({'; '.join(differ)}): pyannote's tie order and float "
            "rounding can differ between them; ties are judged as tie order (docs/machines.md)"]


def manifest_warnings(manifest: dict) -> list[str]:
    """One line when a candidate's manifest says it is pyannote (a reference manifest copied whole)."""
    said = []
    if manifest.get("side") == "reference":
        said.append("calls its side 'reference'")
    if "pyannote" in str(manifest.get("implementation", "")).lower():
        said.append(f"calls its implementation {manifest['implementation']!r}")
    if not said:
        return []
    return [f"the candidate's manifest {' and '.join(said)}: copied whole from pyannote's? "
            "set side and implementation to your port's (docs/porting.md, The manifest)"]


def _declared(manifest: dict, description: Description) -> tuple[set[str], dict[str, set[str]]]:
    """The manifest's ``not_implemented``: whole stages, and names per stage."""
    entries = manifest.get("not_implemented") or []
    if isinstance(entries, str):
        entries = [entries]
    stages, names = set(), {}
    for entry in entries:
        stage, _, name = str(entry).partition("/")
        if not description.has(stage):
            raise DumpError(f"manifest not_implemented: {entry!r} names no stage of pipeline {description.name}")
        if name:
            names.setdefault(stage, set()).add(name)
        else:
            stages.add(stage)
    return stages, names


def _inputs_of(reference: DumpReader, description: Description, stage: str) -> list[tuple[str, str]]:
    """(stage, name) of every dump that feeds `stage`: its own echoed inputs and the
    description's `inputs` from other stages, as the reference dumped them."""
    found = [(stage, n) for n in reference.names(stage) if is_input(n)]
    for entry in description.stage(stage).inputs:
        # the stage's own names count too: 06's fbank is computed from 06's crops
        source, _, pattern = entry.partition("/")
        matcher = re.compile(re.escape(pattern).replace(re.escape("<k>"), r"\d+") + "$")
        found += [(source, n) for n in reference.names(source) if matcher.match(n) and (source, n) not in found]
    return found


def _same_bits(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def fed_by_reference(reference: DumpReader, candidate: DumpReader, description: Description,
                     stage: str) -> str | None:
    """Why the candidate's `stage` ran on the reference's inputs (None when it may not
    have): its manifest says ``"inputs": "reference"``, or every input the stage reads
    was dumped by the candidate and equals the reference's bit for bit. Only the stage's
    own echoed inputs (``in_*``, parameters) may be left out; one input that the
    candidate did not dump (a stage it skipped) is enough to judge along the chain."""
    if candidate.manifest.get("inputs") == "reference":
        return 'the manifest says "inputs": "reference"'
    inputs = _inputs_of(reference, description, stage)
    absent = [(s, n) for s, n in inputs if not candidate.has(s, n) and not (s == stage and is_input(n))]
    dumped = [(s, n) for s, n in inputs if candidate.has(s, n)]
    if absent or not dumped:
        return None
    if all(_same_bits(reference.load(s, n), candidate.load(s, n)) for s, n in dumped):
        return f"its {len(dumped)} input(s) equal the reference's bit for bit"
    return None


def holes(verdicts: dict[str, "StageVerdict"]) -> list[str]:
    """Stages the candidate did not dump, undeclared, that the reference reached, lying
    between stages the candidate did dump: a hole, not a port that starts later or stops
    earlier (those are "not implemented")."""
    order = [s for s, v in verdicts.items() if v.status != "excluded"]
    dumped = [i for i, s in enumerate(order) if verdicts[s].status not in ("not implemented", "not reached")]
    if not dumped:
        return []
    first, last = dumped[0], dumped[-1]
    return [s for s in order[first + 1:last]
            if verdicts[s].status == "not implemented" and not verdicts[s].declared]


def judge(reference_dir: str | Path, candidate_dir: str | Path, runner=None,
          stages: list[str] | None = None) -> Verdict:
    """The verdict on one recording: `candidate_dir`'s dumps against `reference_dir`'s.

    runner: ``runner(stage, reference_reader) -> {name: value}``, a port's stage run
    alone on the reference's inputs (`port.stages.runner(pipeline)`); when given, each
    stage is also judged isolated. The harness never imports the port's pipeline: the
    caller hands it in.
    stages: limit the verdict to these stages (see `parse_stages`); the others are
    "excluded", and stages the candidate lacks are then not failures.

    A candidate whose stage ran on the reference's dumped inputs (`fed_by_reference`)
    is judged with the isolated bounds (``atol`` and the isolated noise), else with the
    chain bounds. Its manifest's ``not_implemented`` (stages, or ``stage/name``) are
    shown, not failed; echoed inputs it did not dump are the reference's own.
    """
    reference, candidate = DumpReader(reference_dir), DumpReader(candidate_dir)
    description = check_pipelines(reference, candidate)
    noise, noise_source = load_noise(reference)
    declared_stages, declared_names = _declared(candidate.manifest, description)
    verdicts: dict[str, StageVerdict] = {}
    for stage in description.stage_names:
        if stages is not None and stage not in stages:
            verdicts[stage] = StageVerdict(stage, "excluded", "not in --stages")
            continue
        on_ref, on_cand = bool(reference.names(stage)), bool(candidate.names(stage))
        reason = unreached_reason(reference, stage)
        if not on_ref and not on_cand:
            verdicts[stage] = StageVerdict(stage, "not reached", reason) if reason else StageVerdict(
                stage, "fail", "neither side dumped this stage and the reference's dumps give no reason")
            continue
        names = declared_names.get(stage, set())
        if not on_cand:
            if stage in declared_stages or (names and set(reference.names(stage)) - names <= {
                    n for n in reference.names(stage) if is_input(n)}):
                verdicts[stage] = StageVerdict(stage, "not implemented", "declared in the candidate's manifest",
                                               declared=True)
            else:
                verdicts[stage] = StageVerdict(stage, "not implemented", "the candidate dumped nothing for this "
                                               "stage (declare it in its manifest's not_implemented if meant)")
            continue
        if not on_ref:
            verdicts[stage] = StageVerdict(
                stage, "fail", "the candidate dumped a stage the reference never reached" + (f" ({reason})" if reason else ""),
                chain=compare_stage(reference, candidate, stage, noise=noise.get(stage, {}).get("chain")))
            continue
        verdict = StageVerdict(stage, "pass")
        fed = fed_by_reference(reference, candidate, description, stage)
        if stage in declared_stages:
            names = set(reference.names(stage))
        if fed:
            verdict.bounds, verdict.bounds_reason = "isolated", fed
            verdict.isolated = compare_stage(reference, candidate, stage, chain=False,
                                             noise=noise.get(stage, {}).get("isolated"), declared=names)
        else:
            verdict.bounds, verdict.bounds_reason = "chain", "run end to end (its inputs are its own)"
            verdict.chain = compare_stage(reference, candidate, stage, chain=True,
                                          noise=noise.get(stage, {}).get("chain"), declared=names)
        if runner is not None and stage not in reference.manifest.get("given", ()):
            verdict.isolated += isolated_rows(reference, stage, runner, noise.get(stage, {}).get("isolated"))
        if any(not r.passed for r in verdict.chain + verdict.isolated):
            verdict.status = "fail"
        elif any(r.kind == "not implemented" for r in verdict.chain + verdict.isolated):
            verdict.status = "partial"
        verdicts[stage] = verdict
    for stage in holes(verdicts):
        verdicts[stage] = StageVerdict(stage, "missing", "a hole: the candidate dumped stages before and after it, "
                                       "not this one (declare it in its manifest's not_implemented if that is meant)")
    platforms = {"reference": reference.manifest.get("platform"), "candidate": candidate.manifest.get("platform")}
    warnings = manifest_warnings(candidate.manifest) + platform_warnings(platforms)
    return Verdict(reference.path.name, verdicts, noise_source, description.name, coverage(reference), warnings,
                   platforms)


def isolated_rows(reference: DumpReader, stage: str, runner, noise: dict | None = None) -> list[Row]:
    """The port's stage run alone on the reference's inputs, against the reference's outputs."""
    produced = runner(stage, reference)
    expected = _names(reference, stage, outputs_only=True)
    rows = []
    noise = noise or {}
    for name in expected:
        if name not in produced:
            rows.append(Row(stage, name, "missing", passed=False, note="the port's stage did not produce it"))
            continue
        rows.append(compare_values(stage, name, reference.load(stage, name), produced[name], chain=False,
                                   noise=noise.get(name), reader=reference))
    for name in sorted(set(produced) - set(expected)):
        rows.append(Row(stage, name, "extra", passed=False, note="the port produced a name the reference has not"))
    return rows


def first_failure(rows: list[Row]) -> str | None:
    for row in rows:
        if not row.passed:
            return row.stage
    return None


# ----------------------------------------------------------------------------- coverage
def _load(reference: DumpReader, stage: str, name: str):
    return np.asarray(reference.load(stage, name)) if reference.has(stage, name) else None


def _calls_of(reference: DumpReader, stage: str, suffix: str) -> list[str]:
    names = [n for n in reference.names(stage) if re.fullmatch(rf"call\d+_{suffix}", n)]
    return sorted(names, key=lambda n: int(n[4:].split("_", 1)[0]))


def _reassignment(reference: DumpReader) -> tuple[bool, str] | None:
    labels = _calls_of(reference, "11-fcluster", "out_labels")
    size = _load(reference, "11-fcluster", "in_min_cluster_size")
    if not labels or size is None:
        return None
    clusters = np.asarray(reference.load("11-fcluster", labels[-1]))  # the cut the reassignment starts from
    size = min(int(size), max(1, round(0.1 * len(clusters))))  # AgglomerativeClustering.cluster's own
    _, counts = np.unique(clusters, return_counts=True)
    large, small = int(np.sum(counts >= size)), int(np.sum(counts < size))
    if small == 0:
        return False, f"no small cluster ({large} cluster(s) of >= {size})"
    if large < 2:
        return False, f"trivial: {small} small cluster(s) and {large} large one(s) (no choice to make)"
    return True, f"{small} small cluster(s) reassigned among {large} large ones"


def _constraints(reference: DumpReader) -> tuple[bool, str] | None:
    given = {}  # the clustering's own arguments (12-assign / 14-centroids); 11's are set_num_clusters' bounds
    defaults = {"in_num_clusters": None, "in_min_clusters": 1.0, "in_max_clusters": math.inf}
    for stage in ("12-assign", "14-centroids"):
        for name, default in defaults.items():
            value = _load(reference, stage, name)
            if value is not None and not np.isnan(float(value)) and float(value) != default:
                given[name[3:]] = float(value)
    walked = len(_calls_of(reference, "11-fcluster", "out_labels")) > 1
    if not given and not reference.has("11-fcluster", "in_threshold"):
        return None
    if not given:
        return False, "no num/min/max speakers given"
    text = ", ".join(f"{k} {v:g}" for k, v in given.items())
    return True, text + ("; the dendrogram was walked" if walked else "; the threshold's cut met them")


def pdist(X: np.ndarray, block: int = 128) -> np.ndarray:
    """``scipy.spatial.distance.pdist(X)`` (euclidean) bit for bit, in numpy, so the judge installs
    without scipy: each pair's squared differences summed in column order in float64, then the square
    root, as scipy's loop does (numpy's own sums reorder). Rows in blocks of `block` (memory: one block's
    pairs); about 2.6x scipy's time (n = 3,000 embeddings: 0.9 s against 0.34 s, AMD EPYC)."""
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    columns = np.ascontiguousarray(X.T)
    out = np.empty(n * (n - 1) // 2)
    start = 0
    for a in range(0, max(n - 1, 0), block):
        b = min(a + block, n - 1)
        acc = np.zeros((b - a, n - a - 1))
        tmp = np.empty_like(acc)
        for k in range(columns.shape[0]):
            np.subtract(columns[k, a:b, None], columns[k, None, a + 1:], out=tmp)
            np.multiply(tmp, tmp, out=tmp)
            np.add(acc, tmp, out=acc)
        np.sqrt(acc, out=acc)
        for i in range(a, b):  # row i's pairs (i, j > i): scipy's condensed order
            out[start:start + n - 1 - i] = acc[i - a, i - a:]
            start += n - 1 - i
    return out


def _linkage_ties(reference: DumpReader) -> tuple[bool, str] | None:
    X, Z = _load(reference, "10-linkage", "in_X"), _load(reference, "10-linkage", "out_Z")
    if X is None or Z is None:
        return None
    distances = pdist(X)
    tied = int(distances.size - np.unique(distances).size)
    heights = int(len(Z) - np.unique(Z[:, 2]).size)
    if tied or heights:
        return True, f"{tied} exactly equal initial distances, {heights} repeated merge heights"
    return False, "no two distances or merge heights exactly equal"


def _height_at_threshold(reference: DumpReader) -> tuple[bool, str] | None:
    Z, t = _load(reference, "10-linkage", "out_Z"), _load(reference, "11-fcluster", "in_threshold")
    if Z is None or t is None:
        return None
    equal = int(np.sum(Z[:, 2] == float(t)))
    return (True, f"{equal} merge height(s) exactly {float(t)!r}") if equal else (False, "no merge height equals the threshold")


def _hard_clusters(reference: DumpReader):
    for stage in reference.stages():
        if stage.endswith("-reconstruct"):
            return _load(reference, stage, "call0_in_hard_clusters"), stage
    return None, None


def _shared_cluster(reference: DumpReader) -> tuple[bool, str] | None:
    hard, _ = _hard_clusters(reference)
    if hard is None:
        return None
    shared = sum(1 for row in hard if len([k for k in row if k >= 0]) != len({k for k in row if k >= 0}))
    return (True, f"{shared} chunk(s) with two local speakers in one cluster") if shared else (
        False, "no chunk has two local speakers in one cluster")


def _ranking_ties(reference: DumpReader) -> tuple[bool, str] | None:
    """Frames where the count-th and the next cluster's overlap-added activations are
    exactly equal (to_diarization's argsort decides), as Inference.aggregate adds them
    (skip_average, no hamming, chunk start rounded to the nearest output frame)."""
    hard, stage = _hard_clusters(reference)
    seg = _load(reference, "04-multilabel", "out_multilabel")
    count = _load(reference, "05-count", "out_count")
    frames = _load(reference, "05-count", "out_frames")
    if hard is None or seg is None or count is None or frames is None:
        return None
    parameters = reference.manifest.get("parameters") or {}
    chunk_step = float(parameters.get("segmentation_step", 0.1)) * float(parameters.get("duration", 10.0))
    num_clusters = int(np.max(hard)) + 1
    if num_clusters < 2:
        return False, "one cluster: nothing to rank"
    num_chunks, num_frames, _ = seg.shape
    starts = [int(np.rint((c * chunk_step - frames[0]) / frames[2])) for c in range(num_chunks)]
    total = max(starts[-1] + num_frames, len(count))
    activations = np.zeros((total, num_clusters))
    for c, (clusters, s) in enumerate(zip(hard, seg)):
        for k in set(int(k) for k in clusters if k >= 0):
            activations[starts[c]:starts[c] + num_frames, k] += np.max(s[:, clusters == k], axis=1)
    activations = -np.sort(-activations[: len(count)], axis=1)
    k = count[:, 0].astype(np.int64)
    rows = np.flatnonzero((k > 0) & (k < num_clusters))
    tied = int(np.sum(activations[rows, k[rows] - 1] == activations[rows, k[rows]]))
    return (True, f"{tied} frame(s) where the count-th and next clusters tie") if tied else (
        False, "no frame where the ranking at the count ties")


def _padded_chunk(reference: DumpReader) -> tuple[bool, str] | None:
    wave, chunks = _load(reference, "01-audio", "out_waveform"), _load(reference, "02-chunks", "out_chunks")
    if wave is None or chunks is None:
        return None
    window = chunks.shape[-1]
    step = int(round(float((reference.manifest.get("parameters") or {}).get("segmentation_step", 0.1)) * window))
    samples = wave.shape[-1]
    covered = (len(chunks) - 1) * step + window
    return (True, f"last chunk has {covered - samples} zero samples") if covered > samples else (
        False, "every chunk lies inside the audio")


def _linkage_skipped(reference: DumpReader) -> tuple[bool, str] | None:
    stages = reference.stages()
    later = [s for s in stages if s[:2].isdigit() and int(s[:2]) >= 12]
    if not later:
        return None
    if "10-linkage" in stages:
        return False, "linkage ran"
    return True, unreached_reason(reference, "10-linkage") or "no 10-linkage dump"


# each branch of pyannote's code a recording may exercise, computed from the reference's dumps
BRANCHES = {
    "small_cluster_reassignment": ("small clusters reassigned to large ones (non-trivially)", _reassignment),
    "speaker_constraints": ("num/min/max speakers given", _constraints),
    "linkage_ties": ("exact ties in linkage", _linkage_ties),
    "height_at_threshold": ("a merge height equal to the threshold", _height_at_threshold),
    "shared_cluster": ("two local speakers in one cluster", _shared_cluster),
    "ranking_ties": ("exact ties in the reconstruction's ranking", _ranking_ties),
    "padded_last_chunk": ("a zero-padded last chunk", _padded_chunk),
    "linkage_skipped": ("linkage skipped", _linkage_skipped),
}


def coverage(reference: DumpReader) -> dict:
    """Which branches of pyannote's code this recording exercised: {key: {exercised, what, detail}}
    (a branch whose dumps are absent is left out)."""
    out = {}
    for key, (what, rule) in BRANCHES.items():
        try:
            found = rule(reference)
        except (DumpError, ValueError, IndexError, TypeError):
            found = None
        if found is not None:
            out[key] = {"exercised": bool(found[0]), "what": what, "detail": found[1]}
    return out
