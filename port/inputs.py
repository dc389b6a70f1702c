"""Which recordings a command was given, each with a unique, readable key.

Arguments are audio files, folders (searched recursively for audio files) or list
files (one path per line, relative to the list's folder; blank lines and ``#``
comments skipped). Keys name dumps and RTTM files: the file's stem when it is
unique, else the shortest path suffix that tells the colliding files apart
(``a/x.flac`` and ``b/x.wav`` become ``a-x`` and ``b-x``; ``a/x.wav`` and
``a/x.flac`` become ``x.wav`` and ``x.flac``).
"""

from __future__ import annotations

import os
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


GIVEN_LIMIT = 8 << 30  # bytes one array of a --embeddings folder may hold once read (an hour's are ~100 MB)


def _array(path: Path, key: str, kinds: str = "biuf", ndim: int | None = None):
    """`key` of the npz archive `path`, checked by its header before its values are read:
    an archive (not a plain .npy), the key present, a real dtype of `kinds`, `ndim` axes,
    the size the header says equal to the member's; GivenError (one line, naming the file) otherwise."""
    import zipfile

    import numpy as np
    from numpy.lib import format as npy

    from .dumps import DumpError, check_dtype, open_regular, printable

    try:
        handle, size = open_regular(path)
    except DumpError as error:
        missing = not os.path.lexists(path)
        raise GivenError(f"{path}: missing (want an npz with key {key!r})" if missing else str(error)) from None
    with handle:
        magic = handle.read(6)
        if magic.startswith(b"\x93NUMPY"):
            raise GivenError(f"{path}: a plain .npy, not an npz archive (write it with numpy.savez, key {key!r})")
        if not magic.startswith(b"PK"):
            raise GivenError(f"{path}: not an npz archive ({'empty' if not magic else 'no zip signature'})")
        try:
            with zipfile.ZipFile(handle) as archive:
                names = archive.namelist()
                if f"{key}.npy" not in names:
                    found = ", ".join(printable(n[:-4] if n.endswith(".npy") else n, 40) for n in names[:10])
                    raise GivenError(f"{path}: no key {key!r} (has {found or 'none'})")
                info = archive.getinfo(f"{key}.npy")
                with archive.open(info) as member:
                    version = npy.read_magic(member)
                    if version not in ((1, 0), (2, 0)):
                        raise GivenError(f"{path}: {key}: .npy format version {version} (want 1.0 or 2.0)")
                    read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                    shape, _, dtype = read(member, max_header_size=10000)
                    offset = member.tell()
                try:
                    check_dtype(dtype, f"{path}: {key}")
                except DumpError as error:
                    raise GivenError(str(error)) from None
                if dtype.kind not in kinds:
                    raise GivenError(f"{path}: {key} are {dtype}, not {'float' if kinds == 'f' else 'real numbers'}")
                if ndim is not None and len(shape) != ndim:
                    raise GivenError(f"{path}: {key} have shape {shape}, want {ndim} axes")
                data = int(np.prod(shape, dtype=object)) * dtype.itemsize if shape else dtype.itemsize
                if data != info.file_size - offset:
                    raise GivenError(f"{path}: {key}: its header says {shape} {dtype} ({data} bytes), the archive "
                                     f"holds {info.file_size - offset} (damaged)")
                if data > GIVEN_LIMIT:
                    raise GivenError(f"{path}: {key}: {data} bytes, more than {GIVEN_LIMIT} (a recording's are far fewer)")
                with archive.open(info) as member:
                    return npy.read_array(member, allow_pickle=False)
        except GivenError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, TypeError, SyntaxError,
                NotImplementedError, RuntimeError, OverflowError) as error:
            raise GivenError(f"{path}: unreadable npz ({printable(' '.join(str(error).split()), 100)})") from None


def load_given(folder: str | Path) -> dict:
    """A `--embeddings` folder: ``segmentations.npz`` (key ``segmentations``, (C, F, S) float,
    binarized), ``raw_embeddings.npz`` (key ``embeddings``, (C, S, D) float, NaN where pyannote
    gives NaN) and optionally ``reconstruction.npz`` (the chunk and frame windows, `WINDOW_KEYS`).

    Returns {"segmentations", "embeddings", "chunks": (start, duration, step) | None,
    "frames": ... | None}; GivenError (one line) on anything missing, damaged or inconsistent."""
    import numpy as np

    folder = Path(folder)
    if not os.path.isdir(folder):
        raise GivenError(f"{folder}: not a folder (want segmentations.npz and raw_embeddings.npz in it)")
    segmentations = _array(folder / "segmentations.npz", "segmentations", "f", 3)
    embeddings = _array(folder / "raw_embeddings.npz", "embeddings", "f", 3)
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
    if os.path.lexists(folder / "reconstruction.npz"):
        window = []
        for key in WINDOW_KEYS:
            value = np.asarray(_array(folder / "reconstruction.npz", key, "iuf"))
            if value.size != 1:
                raise GivenError(f"{folder / 'reconstruction.npz'}: {key} holds {value.size} values, want one number")
            window.append(float(value.reshape(-1)[0]))
        if not all(np.isfinite(window)) or min(window[1], window[2], window[4], window[5]) <= 0:
            raise GivenError(f"{folder / 'reconstruction.npz'}: durations and steps must be positive and finite")
        chunks, frames = tuple(window[:3]), tuple(window[3:])
    if os.path.lexists(folder / "reference.rttm"):  # the capture's own diarization, compared after the run
        reference_rttm(folder)
    return {"segmentations": segmentations.astype(np.float32, copy=False),
            "embeddings": embeddings.astype(np.float32, copy=False), "chunks": chunks, "frames": frames}


def reference_rttm(folder: str | Path) -> str:
    """The capture's ``reference.rttm`` (pyannote's diarization of it), read as any dump's RTTM:
    a regular file, UTF-8, well-formed SPEAKER lines; GivenError naming it otherwise."""
    from .dumps import RTTM_LIMIT, DumpError, read_text, rttm_turns

    path = Path(folder) / "reference.rttm"
    try:
        text = read_text(path, RTTM_LIMIT, "RTTM file")
        rttm_turns(text, path)
    except DumpError as error:
        raise GivenError(str(error)) from None
    return text


def given_sha256(folder: str | Path) -> str:
    """What a `--embeddings` run was made from: the sha256 of its input files, in order."""
    import hashlib

    from .dumps import open_regular

    digest = hashlib.sha256()
    for name in ("segmentations.npz", "raw_embeddings.npz", "reconstruction.npz"):
        path = Path(folder) / name
        if path.is_file():
            handle, _ = open_regular(path)  # never blocks: load_given checked them first
            digest.update(name.encode() + b"\0")
            with handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def load_capture_array(folder: str | Path, file: str, key: str):
    """An optional array of a capture of pyannote's outputs (``clustering.npz``'s
    ``hard_clusters``, ``reconstruction.npz``'s ``discrete_diarization``): None when the
    file is absent; GivenError (one line) when it is there but damaged."""
    path = Path(folder) / file
    if not path.exists():
        return None
    return _array(path, key)
