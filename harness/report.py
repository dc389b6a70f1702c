"""Pictures of one recording's comparison: a self-contained HTML page (`verify.py ... --report`).

Drawn from the two dump trees alone (any side, any language), so `run` and `compare`
draw the same page:

- per float stage, the candidate's drift from pyannote over time (max |difference| per
  10 s chunk, per second for the waveform), beside pyannote's own float32 noise where
  `reference/noise.py` stored it (``noise.json`` beside the reference dump);
- the two diarizations (the annotation stage's RTTM) as stacked timelines, their differences in red;
- the worst chunk's segmentation (03/04) on both sides.

matplotlib (installed with pyannote.audio) is imported only here, on demand, so `port`
itself never needs it. Images are embedded as base64 PNG.

Every string taken from a dump (sides, names, speaker labels, paths) is escaped for the
page (`_h`) and for matplotlib's text (`_m`: no mathtext); the page is written atomically;
nothing is sized by a value of the data (the diarization's differences are found from the
turns' boundaries, never on a time grid, and turns past the audio's end are cut there and named).
"""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

import numpy as np

from .compare import NOISE_FILE  # written by reference/noise.py beside the reference's manifest
from port.dumps import RTTM_SLACK_SECONDS, DumpReader, audio_duration, printable, read_noise, rttm_turns, write_atomic
from port.vocabulary import pipeline as describe

SAMPLE_RATE = 16000
# float names drawn over time, and how their leading axis maps to audio time
FLOAT_SERIES = (
    ("01-audio", "out_waveform"),  # (1, samples): per second
    ("02-chunks", "out_chunks"),  # (C, 1, samples): per chunk
    ("03-segmentation", "out_log_probs"),  # (C, F, classes)
    ("06-fbank", "out_waveforms"),
    ("06-fbank", "out_fbank"),
    ("08-embeddings", "out_embeddings"),  # (C, S, D)
)
TINY = 1e-12  # where a log axis shows exact zeros
MAX_LABELS = 32  # speaker labels drawn as lanes; more and the diarization is summarised, not drawn


def _h(text) -> str:
    """A string for the page: control characters escaped (port.dumps.printable), then HTML."""
    return html.escape(printable(text, 2000))


def _m(text) -> str:
    """A string for matplotlib: control characters escaped, "$" never starting mathtext."""
    return printable(text, 120).replace("$", r"\$")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    _pyplot().close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _load(reader: DumpReader, stage: str, name: str):
    """An array of a dump, memory-mapped when it is npy (an hour's chunks are gigabytes); None when absent."""
    return np.asarray(reader.load(stage, name, mmap=True)) if reader.has(stage, name) else None


def _blocks(n: int, size: int = 32):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _abs_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| in float64; 0 where both are NaN or the same infinity, inf where only one is NaN."""
    a, b = np.array(a, dtype=np.float64, ndmin=1), np.array(b, dtype=np.float64, ndmin=1)
    with np.errstate(invalid="ignore"):
        difference = np.abs(a - b)
    difference[(a == b) | (np.isnan(a) & np.isnan(b))] = 0.0
    difference[np.isnan(difference)] = np.inf
    return difference


def _chunk_timing(reference: DumpReader) -> tuple[float, float]:
    """(duration, step) of the sliding chunks in seconds: 02's chunk length, the manifest's step."""
    step = 10.0 * float(reference.manifest.get("parameters", {}).get("segmentation_step", 0.1))
    header = reference.header("02-chunks", "out_chunks") if reference.has("02-chunks", "out_chunks") else None
    return (header.shape[-1] / SAMPLE_RATE if header is not None and header.shape else 10.0), step


# ----------------------------------------------------------------------------- noise
def load_noise(reference: DumpReader) -> tuple[dict, list[int], str]:
    """pyannote's own float32 noise per (stage, name) stored beside the reference dump:
    ({(stage, name): {"max": .., "per_chunk_max": [..]}}, measured chunks, note)."""
    path = reference.path / NOISE_FILE
    if not (path.exists() or path.is_symlink()):  # anything else there is read, and refused when not a file
        return {}, [], "pyannote's own noise not measured for this dump (no noise.json beside the reference)"
    stored = read_noise(path)  # checked: a damaged noise.json is one line (DumpError), never a crash
    for key in ("audio_sha256", "segmentation_sha256", "embedding_sha256"):
        if key in stored and stored.get(key) != reference.manifest.get(key):
            return {}, [], f"{path.name} was measured on other {key.split('_')[0]}: not drawn"
    noise = {}
    for stage, modes in stored.get("stages", {}).items():
        values = modes.get("chain") or modes.get("isolated") or {}
        for name, stats in values.items():
            noise[(stage, name)] = stats
    return noise, list(stored.get("chunks", [])), "pyannote float32 vs float64 (" + stored.get("chunks_note", "all chunks") + ")"


# ----------------------------------------------------------------------------- drift
def drift_over_time(stage: str, a: np.ndarray, b: np.ndarray, chunk: tuple[float, float]):
    """(times, max |a - b| per time bin): per chunk for chunked arrays, per second for 01."""
    duration, step = chunk
    if stage == "01-audio":  # (channels, samples): max per second, ten minutes at a time
        a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
        per_second = []
        for start in range(0, a.shape[-1], 600 * SAMPLE_RATE):
            piece = _abs_difference(a[:, start : start + 600 * SAMPLE_RATE], b[:, start : start + 600 * SAMPLE_RATE]).max(axis=0)
            seconds = int(np.ceil(piece.size / SAMPLE_RATE))
            padded = np.zeros(seconds * SAMPLE_RATE)
            padded[: piece.size] = piece
            per_second.append(padded.reshape(seconds, SAMPLE_RATE).max(axis=1))
        per_second = np.concatenate(per_second) if per_second else np.zeros(0)
        return np.arange(len(per_second)) + 0.5, per_second
    per_chunk = np.concatenate([_abs_difference(a[s], b[s]).reshape(s.stop - s.start, -1).max(axis=1)
                                for s in _blocks(len(a))]) if len(a) else np.zeros(0)
    return np.arange(len(per_chunk)) * step + duration / 2, per_chunk


def _figure_drift(reference, candidate, noise, noise_chunks, chunk) -> tuple[str | None, list[str]]:
    plt = _pyplot()
    panels, notes, identical, absent = [], [], [], []
    for stage, name in FLOAT_SERIES:
        a, b = _load(reference, stage, name), _load(candidate, stage, name)
        if a is None:
            continue
        if b is None:
            absent.append(f"{stage}/{name}")
            continue
        if a.shape != b.shape:
            notes.append(f"{stage}/{name}: shape {b.shape} != {a.shape}")
            continue
        if a.size == 0 or a.ndim == 0:
            continue
        times, drift = drift_over_time(stage, a, b, chunk)
        if np.any(drift):
            panels.append((stage, name, times, drift))
        else:
            identical.append(f"{stage}/{name}")
    if absent:
        notes.append("not in the candidate (not implemented): " + ", ".join(absent))
    if identical:
        notes.append("identical on every chunk (not drawn): " + ", ".join(identical))
    if not panels:
        return None, notes
    figure, axes = plt.subplots(len(panels), 1, figsize=(13, 2.1 * len(panels)), sharex=True, squeeze=False)
    duration, step = chunk
    with_noise = []
    for ax, (stage, name, times, drift) in zip(axes[:, 0], panels):
        ax.semilogy(times, np.maximum(drift, TINY), color="tab:red", lw=1.3, marker=".", ms=3, label="drift |candidate - pyannote|")
        stats = noise.get((stage, name))
        if stats and stats.get("per_chunk_max") and len(stats["per_chunk_max"]) == len(noise_chunks):
            noise_times = np.asarray(noise_chunks) * step + duration / 2
            ax.semilogy(noise_times, np.maximum(stats["per_chunk_max"], TINY), color="0.35", lw=0, marker="o", ms=4,
                        label="pyannote's own float32 noise")
            with_noise.append(f"{stage}/{name} (per chunk)")
        elif stats and stats.get("max") is not None:
            ax.axhline(max(stats["max"], TINY), color="0.35", ls="--", lw=1, label="pyannote's own float32 noise (max)")
            with_noise.append(f"{stage}/{name} (max)")
        ax.set_ylabel("max |diff|")
        ax.set_title(f"{stage} / {name}", loc="left", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    axes[-1, 0].set_xlabel("time in the audio (s): per chunk (centre), per second for the waveform")
    if with_noise:
        notes.append("pyannote's own noise drawn for: " + ", ".join(with_noise))
    figure.tight_layout()
    return _png(figure), notes


# ----------------------------------------------------------------------------- diarization
def read_rttm(text: str, path="RTTM") -> list[tuple[float, float, str]]:
    """(start, end, label) turns of an RTTM text (port.dumps.rttm_turns: DumpError on a line that is not a turn)."""
    return [(t.start, t.end, t.label) for t in rttm_turns(text, path)]


def diarization_differences(ref_turns, cand_turns, resolution: float = 0.0):
    """Time spans (start, end) where the speakers active on the two sides differ, found by a
    sweep over the turns' boundaries (cost: the number of turns, whatever their times); spans
    no longer than `resolution` seconds are left out."""
    events: list[tuple[float, int, str, int]] = []
    for side, turns in ((0, ref_turns), (1, cand_turns)):
        for start, end, label in turns:
            if end > start:
                events += [(float(start), side, label, 1), (float(end), side, label, -1)]
    events.sort(key=lambda e: e[0])
    counts: dict[tuple[int, str], int] = {}
    differing = 0  # labels active on one side only
    spans: list[tuple[float, float]] = []
    opened = None
    i = 0
    while i < len(events):
        time = events[i][0]
        while i < len(events) and events[i][0] == time:
            _, side, label, step = events[i]
            before = (counts.get((0, label), 0) > 0) != (counts.get((1, label), 0) > 0)
            counts[(side, label)] = counts.get((side, label), 0) + step
            after = (counts.get((0, label), 0) > 0) != (counts.get((1, label), 0) > 0)
            differing += int(after) - int(before)
            i += 1
        if differing and opened is None:
            opened = time
        elif not differing and opened is not None:
            if time - opened > resolution:
                spans.append((opened, time))
            opened = None
    return spans


def _figure_diarization(reference, candidate, names) -> tuple[str | None, str]:
    rttm = "out_diarization.rttm"
    annotation = describe(reference.pipeline).named("annotation")
    if not reference.has(annotation, rttm):
        return None, "the reference has no diarization (pyannote stopped early)"
    if not candidate.has(annotation, rttm):
        return None, f"the candidate has no diarization ({annotation} not implemented)"
    ref_turns = read_rttm(reference.load(annotation, rttm), reference.file(annotation, rttm))
    cand_turns = read_rttm(candidate.load(annotation, rttm), candidate.file(annotation, rttm))
    labels = sorted({t[2] for t in ref_turns + cand_turns})
    # drawn up to the audio's end: a turn past it is named and cut there, never drawn to its end
    end = max([audio_duration(reference) or 0.0] + [e for _, e, _ in ref_turns]) + RTTM_SLACK_SECONDS
    late = sum(e > end for _, e, _ in cand_turns)
    cut = (f"; {late} candidate turn(s) end past the audio's end ({end - RTTM_SLACK_SECONDS:.2f} s), drawn cut at {end:.2f} s"
           if late else "")
    cand_turns = [(min(s, end), min(e, end), who) for s, e, who in cand_turns]
    spans = diarization_differences(ref_turns, cand_turns)
    total = sum(e - s for s, e in spans)
    summary = ("the two diarizations are identical" if not spans else
               f"{len(spans)} span(s), {total:.2f} s in all, where the active speakers differ (red)") + cut
    if len(labels) > MAX_LABELS:
        return None, summary + f"; {len(labels)} speaker labels: not drawn (at most {MAX_LABELS})"
    return _timelines(names, ref_turns, cand_turns, labels, spans, end, summary), summary


def _timelines(names, ref_turns, cand_turns, labels, spans, end, summary, ties=()) -> str:
    """Both diarizations as stacked lanes, one per speaker and side, the differing spans in red
    (and spans that differ only in tie order, when given, in grey); a PNG."""
    plt = _pyplot()
    colours = plt.get_cmap("tab10")
    lanes = [(names[0], ref_turns), (names[1], cand_turns)]
    figure, ax = plt.subplots(figsize=(13, 1.2 + 0.45 * (len(labels) * 2 + 1)))
    y, ticks = 0, []
    for side, turns in lanes:
        for k, label in enumerate(labels):
            segments = [(s, e - s) for s, e, who in turns if who == label]
            ax.broken_barh(segments, (y + 0.1, 0.8), color=colours(k % 10))
            ticks.append((y + 0.5, f"{_m(side)}: {_m(label)}"))
            y += 1
        y += 0.4
    ax.broken_barh([(s, e - s) for s, e in spans], (y + 0.1, 0.8), color="tab:red")
    if ties:
        ax.broken_barh([(s, e - s) for s, e in ties], (y + 0.1, 0.8), color="0.6")
    ticks.append((y + 0.5, "differences" + (" (grey: tie order)" if ties else "")))
    for s, e in spans:
        ax.axvspan(s, e, color="tab:red", alpha=0.12, lw=0)
    ax.set_yticks([t for t, _ in ticks], [label for _, label in ticks])
    ax.set_ylim(-0.2, y + 1.1)
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_xlim(0, max([e for _, e, _ in ref_turns + cand_turns] + [1e-3]) * 1.01)  # never past what is drawn
    ax.set_title(_m(summary), loc="left", fontsize=10)
    figure.tight_layout()
    return _png(figure)


# ----------------------------------------------------------------------------- worst chunk
def worst_chunk(reference: DumpReader, candidate: DumpReader) -> tuple[int | None, str]:
    """The chunk where the segmentation differs most: most 04 mismatches, else largest 03 drift."""
    ref_ml, cand_ml = _load(reference, "04-multilabel", "out_multilabel"), _load(candidate, "04-multilabel", "out_multilabel")
    if ref_ml is not None and cand_ml is not None and ref_ml.shape == cand_ml.shape and ref_ml.ndim == 3 and ref_ml.size:
        mismatches = (ref_ml != cand_ml).reshape(len(ref_ml), -1).sum(axis=1)
        if mismatches.max() > 0:
            c = int(np.argmax(mismatches))
            return c, f"chunk {c}: {int(mismatches[c])} multilabel values differ"
    ref_lp, cand_lp = _load(reference, "03-segmentation", "out_log_probs"), _load(candidate, "03-segmentation", "out_log_probs")
    if ref_lp is not None and cand_lp is not None and ref_lp.shape == cand_lp.shape and ref_lp.ndim == 3 and ref_lp.size:
        drift = drift_over_time("03-segmentation", ref_lp, cand_lp, (10.0, 1.0))[1]
        c = int(np.argmax(drift))
        return c, f"chunk {c}: largest log-probability drift {drift[c]:.3g}"
    return None, "the candidate has no segmentation (03/04 not implemented)"


def _figure_worst_chunk(reference, candidate, names, chunk) -> tuple[str | None, str]:
    c, why = worst_chunk(reference, candidate)
    if c is None:
        return None, why
    duration, step = chunk
    frames = _load(reference, "05-count", "out_frames")
    frames = np.asarray(frames, dtype=np.float64).ravel() if frames is not None and frames.size == 3 else None
    plt = _pyplot()
    rows = [("03-segmentation", "out_log_probs", "powerset class probability (exp log-prob)"),
            ("04-multilabel", "out_multilabel", "speaker active (multilabel)")]
    present = [(s, n, t) for s, n, t in rows if reference.has(s, n) and candidate.has(s, n)
               and reference.header(s, n).shape == candidate.header(s, n).shape and len(reference.header(s, n).shape) == 3]
    if not present:
        return None, why
    figure, axes = plt.subplots(len(present), 1, figsize=(13, 2.6 * len(present)), sharex=True, squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, (stage, name, what) in zip(axes[:, 0], present):
        a, b = np.asarray(_load(reference, stage, name)[c]), np.asarray(_load(candidate, stage, name)[c])
        if frames is not None:
            times = c * step + frames[0] + np.arange(len(a)) * frames[2] + frames[1] / 2
        else:
            times = c * step + (np.arange(len(a)) + 0.5) * duration / len(a)
        if stage == "03-segmentation":  # probabilities of the powerset classes, overlaid
            for k in range(a.shape[-1]):
                ax.plot(times, np.exp(a[:, k]), color=colours(k % 10), lw=1.6, label=f"class {k}")
                ax.plot(times, np.exp(b[:, k]), color=colours(k % 10), lw=1.0, ls="--")
            ax.set_ylim(-0.05, 1.05)
        else:  # one lane per local speaker, 0/1
            for k in range(a.shape[-1]):
                ax.plot(times, a[:, k] * 0.8 + 1.1 * k, color=colours(k % 10), lw=1.6, label=f"speaker {k}")
                ax.plot(times, b[:, k] * 0.8 + 1.1 * k, color=colours(k % 10), lw=1.0, ls="--")
            ax.set_yticks([1.1 * k + 0.4 for k in range(a.shape[-1])], [f"speaker {k}" for k in range(a.shape[-1])])
            differ = np.any(a != b, axis=-1)
            if differ.any():  # frames where the two sides' speakers differ
                ax.plot(times[differ], np.full(int(differ.sum()), 1.1 * a.shape[-1]), "v", color="tab:red", ms=5,
                        label="differs")
        ax.set_ylabel(what, fontsize=8)
        ax.set_title(f"{stage} / {name}, chunk {c} ({c * step:g} s to {c * step + duration:g} s): "
                     f"solid {_m(names[0])}, dashed {_m(names[1])}", loc="left", fontsize=10)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel("time in the audio (s)")
    figure.tight_layout()
    return _png(figure), why


# ----------------------------------------------------------------------------- page
def _status(verdict) -> dict[str, tuple[str, str]]:
    """stage -> (status, reason), from compare rows (.stage, .passed, .note) or a verdict
    object with .stages {stage: (.status, .reason)}; empty when none was given."""
    if verdict is None:
        return {}
    stages = getattr(verdict, "stages", None)
    if isinstance(stages, dict):
        first_failure: dict[str, str] = {}  # the first failing row of each stage, and where
        for row in list(getattr(verdict, "chain", None) or []) + list(getattr(verdict, "isolated", None) or []):
            if not getattr(row, "passed", True) and row.stage not in first_failure:
                where = getattr(row, "where", None) or {}
                at = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in where.items())
                first_failure[row.stage] = f"{row.name}: {row.note}" + (f" (at {at})" if at else "")
        return {s: (str(getattr(v, "status", v)), str(getattr(v, "reason", "") or first_failure.get(s, "")))
                for s, v in stages.items()}
    out: dict[str, tuple[str, str]] = {}
    for row in verdict:
        get = row.get if isinstance(row, dict) else lambda key, r=row: getattr(r, key, "")
        failed = not get("passed") or out.get(get("stage"), ("",))[0] == "FAIL"
        note = out.get(get("stage"), ("", ""))[1] or (f"{get('name')}: {get('note')}" if not get("passed") else "")
        out[get("stage")] = ("FAIL" if failed else "pass", note)
    return out


def _summary_rows(reference: DumpReader, candidate: DumpReader, status: dict[str, str]) -> str:
    rows = []
    for stage in describe(reference.pipeline).stage_names:
        names = reference.names(stage)
        if not names:
            continue
        worst, mismatched, missing = 0.0, 0, []
        for name in names:
            if not candidate.has(stage, name):
                missing.append(name)
                continue
            if name.endswith(".rttm"):
                mismatched += int(reference.load(stage, name) != candidate.load(stage, name))
                continue
            a, b = _load(reference, stage, name), _load(candidate, stage, name)
            if a.shape != b.shape:
                mismatched += 1
            elif a.dtype.kind == "f" or b.dtype.kind == "f":
                for part in (_blocks(len(a)) if a.ndim else [()]):
                    d = _abs_difference(a[part], b[part])
                    mismatched += int(np.count_nonzero(np.isinf(d)))  # NaN or inf on one side only
                    d = d[np.isfinite(d)]
                    worst = max(worst, float(d.max()) if d.size else 0.0)
            else:
                mismatched += int(np.count_nonzero(np.asarray(a) != np.asarray(b)))
        if len(missing) == len(names):
            rows.append(f"<tr class='other'><td>{stage}</td><td>{_h(', '.join(names))}</td><td>-</td><td>-</td>"
                        f"<td>{_h(status.get(stage, ('not implemented',))[0])}</td><td>not in the candidate</td></tr>")
            continue
        state, reason = status.get(stage, ("", ""))
        css = "pass" if state == "pass" else ("fail" if state.upper() == "FAIL" else "other")
        note = "; ".join(x for x in (reason, f"missing: {', '.join(missing)}" if missing else "") if x)
        rows.append(f"<tr class='{css}'><td>{stage}</td><td>{_h(', '.join(names))}</td>"
                    f"<td>{worst:.3g}</td><td>{mismatched}</td><td>{_h(state)}</td><td>{_h(note)}</td></tr>")
    return "\n".join(rows)


def page_path(path: str | Path, recording: str, several: bool) -> Path:
    """One page per recording: the path itself, or <stem>-<recording>.html when several."""
    path = Path(path)
    safe = re.sub(r"[^A-Za-z0-9._+-]", "_", str(recording)).lstrip(".") or "recording"  # never a path of its own
    return path.with_name(f"{path.stem}-{safe}{path.suffix or '.html'}") if several else path


def write(path: str | Path, reference_dir: str | Path, candidate_dir: str | Path, verdict=None,
          several: bool = False) -> Path:
    """Draw one recording's page: `candidate_dir`'s dumps against `reference_dir`'s."""
    reference, candidate = DumpReader(reference_dir), DumpReader(candidate_dir)
    recording = reference.manifest.get("uri", reference.path.name)
    names = (str(reference.manifest.get("side", "reference")), str(candidate.manifest.get("side", "candidate")))
    if names[0] == names[1]:
        names = (f"{names[0]} (A)", f"{names[1]} (B)")
    chunk = _chunk_timing(reference)
    noise, noise_chunks, noise_note = load_noise(reference)
    drift_png, drift_notes = _figure_drift(reference, candidate, noise, noise_chunks, chunk)
    diarization_png, diarization_note = _figure_diarization(reference, candidate, names)
    worst_png, worst_note = _figure_worst_chunk(reference, candidate, names, chunk)

    def figure(png, alt):
        return f"<img alt='{_h(alt)}' src='data:image/png;base64,{png}'>" if png else ""

    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_h(recording)} ({_h(reference.pipeline)}): {_h(names[1])} vs {_h(names[0])}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; max-width: 1300px; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; }} td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
tr.pass td:nth-child(5) {{ color: #1a7f37; }} tr.fail td:nth-child(5) {{ color: #c00; font-weight: bold; }}
tr.other td:nth-child(5) {{ color: #777; }} img {{ max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }}
.note {{ color: #666; font-size: 0.9em; }} code {{ background: #f4f4f4; padding: 0 3px; }}
</style></head><body>
<h1>{_h(recording)}: {_h(names[1])} against {_h(names[0])} ({_h(reference.pipeline)})</h1>
<p class="note">reference <code>{_h(str(reference.path))}</code><br>candidate <code>{_h(str(candidate.path))}</code><br>
audio sha256 {_h(str(reference.manifest.get('audio_sha256', '?'))[:16])}…, models: {_h(str(reference.manifest.get('models', '?')))}</p>
<h2>Stages</h2>
<table><tr><th>stage</th><th>names</th><th>max |diff|</th><th>values differing</th><th>verdict</th><th>note</th></tr>
{_summary_rows(reference, candidate, _status(verdict))}
</table>
<h2>Drift over time</h2>
<p class="note">Per float stage, the largest |{_h(names[1])} − {_h(names[0])}| in each 10 s chunk
(each second for the waveform), log scale; grey: pyannote's own float32 noise on the same chunks
(its stage recomputed in float64). {_h(noise_note)}</p>
{figure(drift_png, 'drift over time')}
{''.join(f'<p class="note">{_h(n)}</p>' for n in drift_notes)}
<h2>Diarization</h2>
<p class="note">{_h(diarization_note)}</p>
{figure(diarization_png, 'diarization timelines')}
<h2>Worst chunk</h2>
<p class="note">{_h(worst_note)}</p>
{figure(worst_png, 'worst chunk segmentation')}
</body></html>
"""
    out = page_path(path, recording, several)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, body, "--report")  # whole or absent, nothing .partial left on any error
    return out


def write_rttm(path: str | Path, verdict) -> Path:
    """The page of an RTTM candidate's verdict (`harness.rttm.RttmVerdict`): the totals on
    pyannote's frame grid, where it differs, and both diarizations as stacked timelines (the
    candidate's labels mapped to pyannote's speakers as the verdict mapped them)."""
    from pathlib import Path as _Path

    reference = DumpReader(verdict.reference)
    annotation = describe(reference.pipeline).named("annotation")
    ref_turns = read_rttm(reference.load(annotation, "out_diarization.rttm"),
                          reference.file(annotation, "out_diarization.rttm"))
    cand_turns = [(start, end, verdict.mapping.get(label) or f"{label} (no match)")
                  for start, end, label in read_rttm(_Path(verdict.candidate).read_text(), verdict.candidate)]
    end = max([verdict.duration] + [e for _, e, _ in ref_turns]) + RTTM_SLACK_SECONDS
    cand_turns = [(min(s_, end), min(e, end), who) for s_, e, who in cand_turns]
    labels = sorted({t[2] for t in ref_turns + cand_turns})
    spans = [(d["start"], d["end"]) for d in verdict.spans]
    all_spans = diarization_differences(ref_turns, cand_turns)
    ties = [sp for sp in all_spans if not any(a < sp[1] and sp[0] < b for a, b in spans)]
    what = {"identical": "identical on pyannote's frame grid",
            "tie order": f"identical up to tie order ({verdict.tie_frames} frames, {verdict.tie_frames * verdict.step:.2f} s)",
            "differs": f"differs: {verdict.differing_frames - verdict.tie_frames} frames beyond tie order"}[verdict.status]
    png = (_timelines(("pyannote", "candidate"), ref_turns, cand_turns, labels, spans, end, what, ties)
           if len(labels) <= MAX_LABELS else None)
    first = verdict.first_difference
    rows = "".join(f"<tr><td>{d['start']:.3f}</td><td>{d['end']:.3f}</td><td>{_h(', '.join(d['reference']) or '-')}</td>"
                   f"<td>{_h(', '.join(d['candidate']) or '-')}</td></tr>" for d in verdict.spans[:50])
    outside = "".join(f"<li>line {t['line']}: {_h(t['label'])} {t['start']:.3f}-{t['end']:.3f} s {_h(t['why'])}</li>"
                      for t in verdict.outside[:50])
    css = "pass" if verdict.passed else "fail"
    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_h(verdict.recording)}: RTTM candidate against pyannote</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; max-width: 1300px; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; }} td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
.pass {{ color: #1a7f37; font-weight: bold; }} .fail {{ color: #c00; font-weight: bold; }}
img {{ max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }} .note {{ color: #666; font-size: 0.9em; }}
code {{ background: #f4f4f4; padding: 0 3px; }}
</style></head><body>
<h1>{_h(verdict.recording)} ({_h(verdict.pipeline)}): an RTTM against pyannote's diarization</h1>
<p class="note">reference <code>{_h(verdict.reference)}</code><br>candidate <code>{_h(verdict.candidate)}</code><br>
judged on pyannote's frame grid: {verdict.frames} frames of {verdict.step * 1000:.1f} ms; the candidate's labels mapped
one to one to pyannote's speakers by overlap: {_h(', '.join(f'{c} -> {r or "none"}' for c, r in verdict.mapping.items()))}</p>
<p class="{css}">RTTM {_h(what)}</p>
<table><tr><th>speech</th><th>missed</th><th>false alarm</th><th>confusion</th><th>frames differing</th><th>of them tie order</th></tr>
<tr><td>{verdict.speech:.2f} s</td><td>{verdict.missed:.2f} s</td><td>{verdict.false_alarm:.2f} s</td>
<td>{verdict.confusion:.2f} s</td><td>{verdict.differing_frames}</td><td>{verdict.tie_frames}</td></tr></table>
<p class="note">Missed speech, false alarm and confusion are counted on the frames that differ beyond tie order.</p>
{f'<p class="fail">first difference at {first["time"]:.3f} s (frame {first["output_frame"]})</p>' if first else ''}
{f'<h2>Turns outside what pyannote could write</h2><ul>{outside}</ul>' if outside else ''}
<h2>Diarization</h2>
{f"<img alt='diarization timelines' src='data:image/png;base64,{png}'>" if png else '<p class="note">too many labels to draw</p>'}
{f'<h2>Where they differ</h2><table><tr><th>from (s)</th><th>to (s)</th><th>pyannote</th><th>candidate</th></tr>{rows}</table>' if rows else ''}
</body></html>
"""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, body, "--report")
    return out
