"""The verdict on a port that gives only speaker turns: an RTTM against a reference dump.

`judge_rttm(reference_dir, candidate_rttm)` puts both diarizations on pyannote's own
frame grid (the reference's reconstruction frames), maps the candidate's labels to
the reference's speakers (Hungarian, on the frames both give a speaker), and counts
on that grid the seconds of missed speech, false alarm and confusion and the frames
that differ. A frame that differs only because the reference broke an exact tie
between clusters another way is tie order (`harness.frames.tie_order`, with the
activations the reference ranked), not a difference. Turns before 0, past the end of
the audio, or between two frame middles (a turn pyannote could not have written) are
findings.

Pass means identical up to tie order; anything else fails, with the first difference
located. `verify.py compare REFERENCE CANDIDATE.rttm` is the command.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from port.dumps import DumpError, DumpReader, read_text
from port.vocabulary import pipeline as describe

from . import frames as grid_rules

SAMPLE_RATE = 16000  # pyannote's models' rate: 01-audio/out_waveform's
MAX_RTTM_BYTES = 64 * 1024 * 1024  # far above an RTTM of days of audio
MAX_LABELS = 1000  # speakers a candidate may name: the grid is frames x labels


@dataclass
class RttmVerdict:
    """A candidate RTTM judged against the reference's diarization on its frame grid."""

    recording: str
    reference: str
    candidate: str
    pipeline: str
    status: str  # "identical", "tie order" or "differs"
    frames: int
    step: float
    duration: float  # the audio's, in seconds
    mapping: dict[str, str | None]  # candidate label -> reference label (None: no reference speaker)
    speakers: dict[str, int]
    speech: float = 0.0  # the reference's speech, in seconds (counted per speaker: overlap counts twice)
    # on the frames that differ beyond tie order (tie frames are pyannote's answer too)
    missed: float = 0.0
    false_alarm: float = 0.0
    confusion: float = 0.0
    differing_frames: int = 0
    tie_frames: int = 0
    first_difference: dict | None = None
    outside: list[dict] = field(default_factory=list)  # turns before 0, past the end, or between frames
    spans: list[dict] = field(default_factory=list)  # where the two differ (beyond tie order), merged
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status in ("identical", "tie order")

    @property
    def error_rate(self) -> float | None:
        """(missed + false alarm + confusion) / speech, on the frame grid."""
        return (self.missed + self.false_alarm + self.confusion) / self.speech if self.speech else None

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed, "error_rate": self.error_rate}


def _read_text(path: Path) -> str:
    """The candidate RTTM: a regular file (never a device or FIFO), UTF-8, of bounded size."""
    return read_text(path, MAX_RTTM_BYTES, "RTTM")


def _audio_duration(reference: DumpReader, grid: grid_rules.Grid) -> float:
    """The audio's duration: 01-audio's waveform length (read from its npy header only),
    else the end of pyannote's last output frame."""
    npy = reference.path / "01-audio" / "out_waveform.npy"
    try:
        with open(npy, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, _ = read(handle)
        return shape[-1] / SAMPLE_RATE
    except (OSError, ValueError, IndexError):
        return grid.end


def _spans(differ: np.ndarray, grid: grid_rules.Grid, ref: np.ndarray, cand: np.ndarray,
           ref_labels: list[str], cand_labels: list[str], limit: int = 200) -> list[dict]:
    """Runs of consecutive differing frames: start, end (s), and who speaks on each side at the start."""
    out, frames = [], np.flatnonzero(differ)
    if not frames.size:
        return out
    breaks = np.flatnonzero(np.diff(frames) > 1)
    starts = np.concatenate([[frames[0]], frames[breaks + 1]])
    ends = np.concatenate([frames[breaks], [frames[-1]]])
    for first, last in zip(starts[:limit], ends[:limit]):
        out.append({"start": round(grid.time(int(first)) - grid.step / 2, 3),
                    "end": round(grid.time(int(last)) + grid.step / 2, 3), "frames": int(last - first + 1),
                    "reference": [ref_labels[k] for k in grid_rules.clusters_at(ref, int(first))],
                    "candidate": [cand_labels[k] for k in grid_rules.clusters_at(cand, int(first))]})
    return out


def judge_rttm(reference_dir: str | Path, candidate: str | Path, candidate_text: str | None = None,
               mapping: str = "hungarian") -> RttmVerdict:
    """`candidate` (an RTTM file; or its text in `candidate_text`) against the diarization
    of the reference dump at `reference_dir`.

    mapping: "hungarian" (a peer's labels are its own: each is mapped to the reference
    speaker it overlaps most, one to one) or "names" (the labels must be pyannote's own:
    SPEAKER_00 is SPEAKER_00; for pyannote's own captures and ports that claim its naming).
    """
    reference = DumpReader(reference_dir)
    description = describe(reference.pipeline)
    reconstruct, annotation = description.named("reconstruct"), description.named("annotation")
    source = Path(candidate)
    text = candidate_text if candidate_text is not None else _read_text(source)
    if not reference.has(annotation, "out_diarization.rttm"):
        raise DumpError(f"{reference.path}: no {annotation}/out_diarization.rttm to judge an RTTM against")
    ref_text = reference.load(annotation, "out_diarization.rttm")
    try:
        cand_turns = grid_rules.parse_rttm(text, str(source))
        ref_turns = grid_rules.parse_rttm(ref_text, f"{reference.path}/{annotation}/out_diarization.rttm")
    except grid_rules.TurnsError as error:
        raise DumpError(str(error)) from None

    notes: list[str] = []
    if reference.has(reconstruct, "call0_out_activations") and reference.has(reconstruct, "out_frames"):
        activations = np.asarray(reference.load(reconstruct, "call0_out_activations"), dtype=np.float64)
        start, duration, step = (float(v) for v in np.asarray(reference.load(reconstruct, "out_frames")).ravel()[:3])
    elif reference.has("05-count", "out_frames") and reference.has("05-count", "out_count"):
        # nobody speaks (pyannote stopped after 05) or a dump without the ranked activations
        start, duration, step = (float(v) for v in np.asarray(reference.load("05-count", "out_frames")).ravel()[:3])
        activations = np.zeros((len(reference.load("05-count", "out_count")), 0))
        if reconstruct in reference.stages():
            notes.append("the reference dump has no ranked activations (made before they were dumped): "
                         "ties cannot be told from differences")
    else:
        raise DumpError(f"{reference.path}: no frame grid ({reconstruct}/out_frames or 05-count/out_frames)")
    grid = grid_rules.Grid(start, duration, step, activations.shape[0])
    audio_end = _audio_duration(reference, grid)

    # the reference's speakers, as columns of the activations (SPEAKER_i: the i-th cluster as pyannote sorts them)
    segments = (np.asarray(reference.load(annotation, "call0_out_segments"), dtype=np.float64).reshape(-1, 3)
                if reference.has(annotation, "call0_out_segments") else np.zeros((0, 3)))
    clusters = sorted({int(k) for k in segments[:, 2]}, key=str)  # Annotation.labels(): as strings
    ref_names = {f"SPEAKER_{i:02d}": k for i, k in enumerate(clusters)}
    for turn in ref_turns:
        if turn.label not in ref_names:  # a dump without segments: its labels in order
            ref_names[turn.label] = len(ref_names)
    columns = max([activations.shape[1]] + [k + 1 for k in ref_names.values()])
    column_label = {k: label for label, k in ref_names.items()}
    tol = grid_rules.tolerance(grid)
    ref = grid_rules.raster([(t.start, t.end, ref_names[t.label]) for t in ref_turns], grid, columns, tol)

    cand_labels = sorted({t.label for t in cand_turns})
    if len(cand_labels) > MAX_LABELS:
        raise DumpError(f"{source}: {len(cand_labels)} speaker labels, more than a diarization to judge may have "
                        f"({MAX_LABELS})")
    cand_index = {label: j for j, label in enumerate(cand_labels)}
    own = grid_rules.raster([(t.start, t.end, cand_index[t.label]) for t in cand_turns], grid, len(cand_labels), tol)

    outside = []
    middles = grid.middles()
    # pyannote's own turns may end past the audio's last sample: where it pads the last chunk
    # with zeros, its frames reach into the padding (30.05 s on a 30.000 s file)
    reach = max([audio_end] + [t.end for t in ref_turns])
    for turn in cand_turns:
        why = None
        if turn.start < 0:
            why = "starts before 0"
        elif turn.end > reach + tol:
            why = (f"ends past the audio ({audio_end:.3f} s)" if reach == audio_end else
                   f"ends past the audio ({audio_end:.3f} s) and past pyannote's last turn ({reach:.3f} s)")
        elif turn.duration > 0 and not np.any((middles >= turn.start - tol) & (middles < turn.end - tol)):
            why = "covers no frame middle (pyannote's turns start and end at frame middles)"
        if why:
            outside.append({"line": turn.line, "start": turn.start, "end": round(turn.end, 6), "label": turn.label,
                            "why": why})

    # candidate labels -> reference clusters
    if mapping == "names":
        assign = {label: ref_names.get(label) for label in cand_labels}
    else:
        from scipy.optimize import linear_sum_assignment

        overlap = ref.T.astype(np.int64) @ own.astype(np.int64)  # (reference speakers, candidate labels)
        rows, cols = linear_sum_assignment(-overlap) if overlap.size else ([], [])
        assign = {label: None for label in cand_labels}
        for k, j in zip(rows, cols):
            if overlap[k, j] > 0 or not ref[:, k].any():
                assign[cand_labels[j]] = int(k)
        used = {k for k in assign.values() if k is not None}
        for k, j in zip(rows, cols):  # a zero-overlap pair still maps a label to an unused speaker
            if assign[cand_labels[j]] is None and int(k) not in used:
                assign[cand_labels[j]] = int(k)
                used.add(int(k))
    extra = [label for label in cand_labels if assign[label] is None]
    width = columns + len(extra)
    cand = np.zeros((grid.frames, width), dtype=bool)
    for label in cand_labels:
        k = assign[label] if assign[label] is not None else columns + extra.index(label)
        cand[:, k] |= own[:, cand_index[label]]
    ref = np.pad(ref, ((0, 0), (0, width - columns)))
    values = np.full((grid.frames, width), np.nan)
    values[:, :activations.shape[1]] = activations
    names = [column_label.get(k, f"(cluster {k})") for k in range(columns)] + [f"{label} (no match)" for label in extra]

    r, c = ref.sum(axis=1), cand.sum(axis=1)
    both = (ref & cand).sum(axis=1)
    differ = np.any(ref != cand, axis=1)
    valid = grid_rules.valid_ties(ref, cand, values)
    non_tie = differ & ~valid
    first = None
    if non_tie.any():
        f = int(np.argmax(non_tie))
        first = {"output_frame": f, "time": round(grid.time(f), 3),
                 "reference": [names[k] for k in grid_rules.clusters_at(ref, f)],
                 "candidate": [names[k] for k in grid_rules.clusters_at(cand, f)]}
    status = "differs" if (non_tie.any() or outside) else ("tie order" if differ.any() else "identical")
    if extra:
        notes.append(f"candidate speakers with no reference speaker: {', '.join(extra)}")
    return RttmVerdict(
        recording=str(reference.manifest.get("uri") or reference.path.name), reference=str(reference.path),
        candidate=str(source), pipeline=description.name, status=status, frames=grid.frames, step=step,
        duration=round(float(audio_end), 6),
        mapping={label: (column_label.get(assign[label], f"(cluster {assign[label]})")
                         if assign[label] is not None else None) for label in cand_labels},
        speakers={"reference": len({t.label for t in ref_turns}), "candidate": len(cand_labels)},
        speech=float(r.sum() * step), missed=float((np.maximum(r - c, 0) * ~valid).sum() * step),
        false_alarm=float((np.maximum(c - r, 0) * ~valid).sum() * step),
        confusion=float(((np.minimum(r, c) - both) * ~valid).sum() * step),
        differing_frames=int(differ.sum()), tie_frames=int(valid.sum()), first_difference=first, outside=outside,
        spans=_spans(non_tie, grid, ref, cand, names, names), notes=notes)
