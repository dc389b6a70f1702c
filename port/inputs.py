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
