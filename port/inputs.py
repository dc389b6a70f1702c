"""Which recordings a command was given, each with a unique, readable key.

Arguments are audio files, folders (searched recursively for audio files) or list
files (one path per line, relative to the list's folder; blank lines and ``#``
comments skipped). Keys name dumps and RTTM files: the file's stem when it is
unique, else the shortest path suffix that tells the colliding files apart
(``a/x.flac`` and ``b/x.wav`` become ``a-x`` and ``b-x``; ``a/x.wav`` and
``a/x.flac`` become ``x.wav`` and ``x.flac``).
"""

from __future__ import annotations

from pathlib import Path

from .audio import AudioError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".mp4", ".wma",
                  ".aif", ".aiff", ".webm", ".mka", ".w64", ".rf64"}
LIST_SUFFIXES = {".txt", ".lst", ".list", ".scp"}


def expand(arguments) -> list[Path]:
    """Audio files named by `arguments` (files, folders, list files), in order, without repeats."""
    found: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not files:
                raise AudioError(f"{path}: directory holds no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
            found += files
        elif path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            found += _read_list(path)
        else:
            found.append(path)  # decoding says what is wrong with it, if anything
    unique, seen = [], set()
    for path in found:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            unique.append(path)
    return unique


def _read_list(path: Path) -> list[Path]:
    """The paths of a list file, relative to its folder."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise AudioError(f"{path}: unreadable list file ({error})") from None
    entries = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not entries:
        raise AudioError(f"{path}: list file names no audio file")
    return [(path.parent / entry) if not Path(entry).is_absolute() else Path(entry) for entry in entries]


def keys(paths) -> list[str]:
    """A unique, readable key per path (see the module docstring)."""
    paths = [Path(p).resolve() for p in paths]
    names = [p.stem for p in paths]
    depth = [1] * len(paths)
    for _ in range(64):
        groups: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            groups.setdefault(name, []).append(i)
        colliding = [members for members in groups.values() if len(members) > 1]
        if not colliding:
            return names
        for members in colliding:
            stems_equal = len({paths[i].parent for i in members}) < len(members)
            for i in members:
                if stems_equal and names[i] != paths[i].name:  # same folder, same stem: the suffix tells them apart
                    names[i] = paths[i].name
                    continue
                depth[i] += 1
                parts = paths[i].parent.parts[-(depth[i] - 1):] if depth[i] > 1 else ()
                last = paths[i].name if names[i] == paths[i].name else paths[i].stem
                names[i] = "-".join([*parts, last]).lstrip("-/") or last
    return [f"{name}-{i}" for i, name in enumerate(names)]  # pathological: keep them apart anyway


# --------------------------------------------------------------------------- given embeddings
WINDOW_KEYS = ("chunk_start", "chunk_duration", "chunk_step", "frame_start", "frame_duration", "frame_step")


class GivenError(ValueError):
    """A folder of given segmentations and embeddings that cannot be used; one line."""


def _array(path: Path, key: str):
    import zipfile

    import numpy as np

    if not path.is_file():
        raise GivenError(f"{path}: missing (want an npz with key {key!r})")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not hasattr(npz, "files"):
                raise GivenError(f"{path}: not an npz archive (a plain .npy?)")
            if key not in npz.files:
                raise GivenError(f"{path}: no key {key!r} (has {', '.join(npz.files) or 'none'})")
            return np.asarray(npz[key])
    except GivenError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise GivenError(f"{path}: unreadable npz ({' '.join(str(error).split())[:100]})") from None


def load_given(folder: str | Path) -> dict:
    """A `--embeddings` folder: ``segmentations.npz`` (key ``segmentations``, (C, F, S) float,
    binarized), ``raw_embeddings.npz`` (key ``embeddings``, (C, S, D) float, NaN where pyannote
    gives NaN) and optionally ``reconstruction.npz`` (the chunk and frame windows, `WINDOW_KEYS`).

    Returns {"segmentations", "embeddings", "chunks": (start, duration, step) | None,
    "frames": ... | None}; GivenError (one line) on anything missing, damaged or inconsistent."""
    import numpy as np

    folder = Path(folder)
    if not folder.is_dir():
        raise GivenError(f"{folder}: not a folder (want segmentations.npz and raw_embeddings.npz in it)")
    segmentations = _array(folder / "segmentations.npz", "segmentations")
    embeddings = _array(folder / "raw_embeddings.npz", "embeddings")
    for name, value, ndim in (("segmentations", segmentations, 3), ("embeddings", embeddings, 3)):
        if value.dtype.kind != "f":
            raise GivenError(f"{folder}: {name} are {value.dtype}, not float")
        if value.ndim != ndim:
            raise GivenError(f"{folder}: {name} have shape {value.shape}, want 3 axes")
    if segmentations.shape[0] != embeddings.shape[0]:
        raise GivenError(f"{folder}: {segmentations.shape[0]} chunks of segmentations but {embeddings.shape[0]} of embeddings")
    if segmentations.shape[2] != embeddings.shape[1]:
        raise GivenError(f"{folder}: {segmentations.shape[2]} local speakers in the segmentations but "
                         f"{embeddings.shape[1]} in the embeddings")
    if segmentations.shape[0] == 0:
        raise GivenError(f"{folder}: no chunks")
    if not np.all(np.isin(segmentations[~np.isnan(segmentations)], (0.0, 1.0))):
        raise GivenError(f"{folder}: segmentations are not binarized (values other than 0 and 1)")
    chunks = frames = None
    if (folder / "reconstruction.npz").exists():
        window = [float(np.asarray(_array(folder / "reconstruction.npz", key)).reshape(-1)[0]) for key in WINDOW_KEYS]
        if not all(np.isfinite(window)) or min(window[1], window[2], window[4], window[5]) <= 0:
            raise GivenError(f"{folder / 'reconstruction.npz'}: durations and steps must be positive and finite")
        chunks, frames = tuple(window[:3]), tuple(window[3:])
    return {"segmentations": segmentations.astype(np.float32, copy=False),
            "embeddings": embeddings.astype(np.float32, copy=False), "chunks": chunks, "frames": frames}


def given_sha256(folder: str | Path) -> str:
    """What a `--embeddings` run was made from: the sha256 of its input files, in order."""
    import hashlib

    digest = hashlib.sha256()
    for name in ("segmentations.npz", "raw_embeddings.npz", "reconstruction.npz"):
        path = Path(folder) / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def load_capture_array(folder: str | Path, file: str, key: str):
    """An optional array of a capture of pyannote's outputs (``clustering.npz``'s
    ``hard_clusters``, ``reconstruction.npz``'s ``discrete_diarization``): None when the
    file is absent; GivenError (one line) when it is there but damaged."""
    path = Path(folder) / file
    if not path.exists():
        return None
    return _array(path, key)
