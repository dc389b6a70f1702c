"""The dump vocabulary both sides write and read (see dumps/README.md).

Layout: ``<root>/<side>/<recording>/<NN-stage>/<name>.npy`` (or ``.txt``), plus
``manifest.json`` per recording. A recording's dump is written into a hidden
temporary folder and renamed into place only when complete, so an interrupted
run never leaves a half-written dump behind.

Names: ``in_<x>`` an input the stage needs that no earlier stage produced (a
parameter), ``out_<x>`` an output, ``call<k>_in_<x>`` / ``call<k>_out_<x>`` for
functions the pipeline calls several times in one run (fcluster, reconstruct,
to_annotation), ``iter<k>_out_<x>`` per VBx iteration. ``.rttm`` files are text
outputs compared verbatim. Which stages and names each pipeline has, with their axes
and inputs, is `port.vocabulary`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .vocabulary import ALL_STAGES, axes, pipeline

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


class DumpError(ValueError):
    """Unreadable, missing or stale dumps; the message is one line."""


# ----------------------------------------------------------------------------- axes
# fbank frames: 25 ms windows every 10 ms (WeSpeaker's Kaldi options)
FBANK_SHIFT, FBANK_LENGTH = 0.010, 0.025


def locate(stage: str, name: str, index: tuple[int, ...], reference: "DumpReader") -> dict:
    """An element's position in the stage's own terms, plus its time (s) in the audio
    when the reference's dumps say it (chunk step, frame window, filter indices)."""
    names = axes(stage, name, reference.manifest.get("pipeline")) or tuple(f"axis{i}" for i in range(len(index)))
    where: dict = {axis: int(i) for axis, i in zip(names, index)}
    rate = 16000.0
    step = 10.0 * float(reference.manifest.get("parameters", {}).get("segmentation_step", 0.1))
    if "embedding_row" in where and reference.has("09-filter", "out_chunk_idx"):
        row = where["embedding_row"]
        chunk_idx = np.asarray(reference.load("09-filter", "out_chunk_idx"))
        if row < len(chunk_idx):
            where["chunk"] = int(chunk_idx[row])
            where["speaker"] = int(np.asarray(reference.load("09-filter", "out_speaker_idx"))[row])
    frames = None
    for source in ("05-count", *(s for s in reference.stages() if s.endswith("-reconstruct"))):
        if reference.has(source, "out_frames"):
            frames = np.asarray(reference.load(source, "out_frames"), dtype=np.float64)
            break
    time = None
    if "native_sample" in where and reference.has("01-audio", "in_sample_rate"):
        time = where["native_sample"] / float(reference.load("01-audio", "in_sample_rate"))
    elif "sample" in where:
        time = where["sample"] / rate
    elif "output_frame" in where and frames is not None:
        time = frames[0] + where["output_frame"] * frames[2] + frames[1] / 2
    elif "segment" in where:
        segments = reference.load(stage, name)
        if where["segment"] < len(segments):
            time = float(segments[where["segment"]][0])
    elif "chunk" in where:
        time = where["chunk"] * step
        if "chunk_sample" in where:
            time += where["chunk_sample"] / rate
        elif "fbank_frame" in where:
            time += where["fbank_frame"] * FBANK_SHIFT + FBANK_LENGTH / 2
        elif "frame" in where and frames is not None:
            time += frames[0] + where["frame"] * frames[2] + frames[1] / 2
    if time is not None:
        where["time"] = round(float(time), 3)
    return where


# ----------------------------------------------------------------------------- encodings
def encode_optional(value) -> np.float64:
    """An optional number (num_speakers=None, max_speakers=inf, ...) as a float64 scalar: NaN for None."""
    return np.float64(np.nan if value is None else value)


def decode_optional(value) -> int | float | None:
    """The inverse of `encode_optional`: None for NaN, an int when integral and finite."""
    value = float(value)
    if np.isnan(value):
        return None
    return int(value) if np.isfinite(value) and value.is_integer() else value


def encode_window(window) -> np.ndarray:
    """A sliding window (pyannote.core's or port.aggregate's) as [start, duration, step] float64."""
    return np.array([window.start, window.duration, window.step], dtype=np.float64)


# ----------------------------------------------------------------------------- text arrays
def write_text_array(path: Path, value: np.ndarray) -> None:
    """Write an array as text: a header line, then one row per line (last axis)."""
    value = np.asarray(value)
    shape = " ".join(str(n) for n in value.shape)
    header = f"# dtype: {value.dtype.name}; shape: {shape}\n"
    if value.dtype.kind == "f":
        fmt = "%.9g" if value.dtype.itemsize <= 4 else "%.17g"
    elif value.dtype.kind == "b":
        value, fmt = value.astype(np.uint8), "%d"
    else:
        fmt = "%d"
    rows = value.reshape(-1, value.shape[-1]) if value.ndim >= 1 and value.shape[-1] > 0 else value.reshape(1, -1)
    with open(path, "w") as handle:
        handle.write(header)
        if value.size:
            np.savetxt(handle, rows, fmt=fmt, delimiter=" ")


def read_text_array(path: Path) -> np.ndarray:
    """Read what write_text_array wrote (or a porter's writer in another language)."""
    with open(path) as handle:
        header = handle.readline()
        body = handle.read()
    try:
        fields = {k.strip(): v.strip() for k, v in (part.split(":", 1) for part in header.lstrip("#").split(";"))}
        dtype = np.dtype(fields["dtype"])
        shape = tuple(int(n) for n in fields["shape"].split())
    except (KeyError, ValueError, TypeError):
        raise DumpError(f"{path}: bad header {header.strip()!r} (want '# dtype: float32; shape: 21 589 7')") from None
    size = int(np.prod(shape)) if shape else 1
    values = np.array(body.split(), dtype=np.float64 if dtype.kind == "f" else np.int64)
    if values.size != size:
        raise DumpError(f"{path}: header says {size} values, file has {values.size}")
    return values.astype(dtype).reshape(shape)


# ----------------------------------------------------------------------------- writer
class DumpWriter:
    """Collects one recording's dump in a temporary folder; `commit` moves it into place.

    Use as the pipeline's hook: ``writer(stage, name, value)``.
    """

    def __init__(self, root: str | Path, side: str, recording: str, fmt: str = "npy"):
        if fmt not in ("npy", "txt"):
            raise ValueError(f"dump format must be npy or txt, not {fmt}")
        self.root = Path(root)
        self.side = side
        self.recording = recording
        self.fmt = fmt
        self.final = self.root / side / recording
        self.tmp = self.root / side / f".{recording}.partial-{os.getpid()}"
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        self.names: dict[str, list[str]] = {}

    def __call__(self, stage: str, name: str, value: Any) -> None:
        if stage not in ALL_STAGES:
            raise ValueError(f"unknown stage {stage}")
        folder = self.tmp / stage
        folder.mkdir(exist_ok=True)
        self.names.setdefault(stage, []).append(name)
        if isinstance(value, str):
            (folder / name).write_text(value)
        elif self.fmt == "txt":
            write_text_array(folder / f"{name}.txt", value)
        else:
            np.save(folder / f"{name}.npy", np.asarray(value), allow_pickle=False)

    def commit(self, manifest: dict) -> Path:
        """Write the manifest, then swap the complete dump into place."""
        manifest = {"format": FORMAT_VERSION, "side": self.side, "recording": self.recording, **manifest}
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        old = self.root / self.side / f".{self.recording}.old-{os.getpid()}"
        if self.final.exists():
            os.replace(self.final, old)
        os.replace(self.tmp, self.final)
        if old.exists():
            shutil.rmtree(old)
        return self.final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "DumpWriter":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self.tmp.exists():  # not committed: an error or Ctrl-C
            self.abort()


# ----------------------------------------------------------------------------- reader
class DumpReader:
    """One recording's dump: ``reader.load(stage, name)``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest = self.path / MANIFEST
        if not manifest.is_file():
            raise DumpError(f"{self.path}: no {MANIFEST} (not a dump, or an interrupted one)")
        try:
            self.manifest = json.loads(manifest.read_text())
        except json.JSONDecodeError as error:
            raise DumpError(f"{manifest}: unreadable manifest ({error.msg})") from None

    @property
    def pipeline(self) -> str:
        """The pipeline the dump was made with (dumps from before community-1 carry none: 3.1)."""
        return str(self.manifest.get("pipeline") or "3.1")

    def stages(self) -> list[str]:
        """The stages present, in the pipeline's order."""
        try:
            order = pipeline(self.pipeline).stage_names
        except KeyError:
            raise DumpError(f"{self.path}: manifest names an unknown pipeline {self.pipeline!r}") from None
        return [s for s in order if (self.path / s).is_dir()]

    def names(self, stage: str) -> list[str]:
        folder = self.path / stage
        if not folder.is_dir():
            return []
        names = set()
        for file in folder.iterdir():
            if file.suffix in (".npy", ".txt"):
                names.add(file.stem)
            elif file.suffix == ".rttm":
                names.add(file.name)
        return sorted(names)

    def has(self, stage: str, name: str) -> bool:
        folder = self.path / stage
        return any((folder / f"{name}{suffix}").is_file() for suffix in ("", ".npy", ".txt"))

    def load(self, stage: str, name: str) -> np.ndarray | str:
        folder = self.path / stage
        if name.endswith(".rttm"):
            return (folder / name).read_text()
        for suffix, read in ((".npy", lambda f: np.load(f, allow_pickle=False)), (".txt", read_text_array)):
            file = folder / f"{name}{suffix}"
            if file.is_file():
                try:
                    return read(file)
                except DumpError:
                    raise
                except (ValueError, OSError, EOFError) as error:  # truncated or damaged file
                    raise DumpError(f"{file}: unreadable ({' '.join(str(error).split())[:120]})") from None
        raise DumpError(f"{self.path}: {stage}/{name} missing")

    def check(self, expected: dict) -> None:
        """Refuse dumps made from other audio or other models: one-line reason."""
        for key in ("audio_sha256", "segmentation_sha256", "embedding_sha256"):
            want, have = expected.get(key), self.manifest.get(key)
            if want is not None and have != want:
                what = key.split("_")[0]
                raise DumpError(
                    f"{self.path}: stale dump, made from other {what} "
                    f"({str(have)[:12]} != {str(want)[:12]}); run 'verify.py clean' or rerun"
                )


def recordings(root: str | Path, side: str) -> list[str]:
    folder = Path(root) / side
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
