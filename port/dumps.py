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

The reader trusts nothing it reads (a dump is written by someone else's code): every
file must be a regular file (or a link to one), is opened without blocking and read
no further than its size; manifests are checked against a schema (`check_manifest`);
arrays are checked by their header before any data is read (real dtypes only, the
size the header says is the size of the file); `check_pair` bounds a candidate's
arrays by the reference's own. Whatever is wrong is one `DumpError` line naming the file.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .vocabulary import ALL_STAGES, PIPELINES, axes, pipeline

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



# ----------------------------------------------------------------------------- shown safely
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte of a file name that is not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: Any, limit: int | None = None) -> str:
    """`text` as one printable line: control characters (ESC, NUL, newlines, C1, bidi
    overrides, undecodable bytes of file names) written as escapes, so that nothing a dump
    holds can move the cursor, clear a screen or end a line; cut to `limit` characters."""
    text = str(text)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    return _CONTROL.sub(_escape_one, text)


# ----------------------------------------------------------------------------- safe reading
# What one file of a dump may weigh before it is read at all (a real manifest is ~2 KB, a
# real noise.json at most a few hundred KB, an hour's RTTM ~100 KB).
MANIFEST_LIMIT = 1 << 20
NOISE_LIMIT = 64 << 20
RTTM_LIMIT = 64 << 20
TEXT_HEADER_LIMIT = 4096
JSON_DEPTH_LIMIT = 16


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def regular_file(path: str | Path) -> os.stat_result:
    """The stat of `path` (links followed): DumpError unless it is a regular file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        dangling = os.path.islink(path)
        raise DumpError(f"{path}: {'a link to nothing' if dangling else 'missing'}") from None
    except PermissionError:
        raise DumpError(f"{path}: unreadable (permission denied)") from None
    except OSError as error:
        raise DumpError(f"{path}: unreadable ({error.strerror or error})") from None
    if not stat.S_ISREG(info.st_mode):
        raise DumpError(f"{path}: {_file_kind(info.st_mode)}, not a regular file "
                        "(a dump holds regular files, or links to regular files)")
    return info


def open_regular(path: str | Path) -> tuple[Any, int]:
    """(binary file, size) of a regular file, opened without blocking (a FIFO or a device
    put in its place between the check and the open is refused, never waited on)."""
    regular_file(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except PermissionError:
        raise DumpError(f"{path}: unreadable (permission denied)") from None
    except OSError as error:
        raise DumpError(f"{path}: unreadable ({error.strerror or error})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise DumpError(f"{path}: {_file_kind(info.st_mode)}, not a regular file")
    return os.fdopen(fd, "rb"), info.st_size


def read_bytes(path: str | Path, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most `limit` bytes, read no further than its size
    (a file that says it is empty, as /proc's do, is never read)."""
    handle, size = open_regular(path)
    with handle:
        if size > limit:
            raise DumpError(f"{path}: {size} bytes, more than a {what} may have ({limit})")
        if size == 0:
            return b""
        try:
            data = handle.read(size + 1)
        except OSError as error:
            raise DumpError(f"{path}: unreadable ({error.strerror or error})") from None
    if len(data) != size:
        raise DumpError(f"{path}: {len(data)} bytes read where its size says {size} (not a plain file?)")
    return data


def read_text(path: str | Path, limit: int, what: str = "file") -> str:
    """A regular file's UTF-8 text (`read_bytes`); DumpError naming the file when it is not UTF-8."""
    data = read_bytes(path, limit, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DumpError(f"{path}: {what} is not UTF-8 text (byte {error.start})") from None


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def read_json(path: str | Path, limit: int, what: str = "JSON file") -> Any:
    """A small JSON file, parsed; DumpError naming the file on anything wrong (size,
    encoding, syntax, nesting deeper than JSON_DEPTH_LIMIT)."""
    text = read_text(path, limit, what)
    if not text.strip():
        raise DumpError(f"{path}: empty {what}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise DumpError(f"{path}: unreadable {what} ({error.msg}, line {error.lineno} column {error.colno})") from None
    except RecursionError:
        raise DumpError(f"{path}: {what} nested too deep (at most {JSON_DEPTH_LIMIT} levels)") from None
    except ValueError as error:  # e.g. an integer of more digits than Python converts
        raise DumpError(f"{path}: unreadable {what} ({printable(error, 100)})") from None
    if _depth(value) > JSON_DEPTH_LIMIT:
        raise DumpError(f"{path}: {what} nested {_depth(value)} levels deep (at most {JSON_DEPTH_LIMIT})")
    return value


# ----------------------------------------------------------------------------- manifests
STRING_LIMIT = 4096
LIST_LIMIT = 1024
KEYS_LIMIT = 256
INFO_DEPTH_LIMIT = 4


class _Bad(Exception):
    """One schema violation: where it is and what is wrong."""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    for types, kind in ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
                        (list, "a list"), (dict, "an object")):
        if isinstance(value, types):
            return kind
    return type(value).__name__


def _string(value, where):
    if not isinstance(value, str):
        raise _Bad(f"{where}: want a string, not {_kind(value)}")
    if len(value) > STRING_LIMIT:
        raise _Bad(f"{where}: a string of {len(value)} characters (at most {STRING_LIMIT})")


def _string_or_null(value, where):
    if value is not None:
        _string(value, where)


def _integer(value, where):
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"{where}: want an integer, not {_kind(value)}")


def _number_or_null(value, where):
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise _Bad(f"{where}: want a number or null, not {_kind(value)}")


def _positive(value, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise _Bad(f"{where}: want a positive number, not {printable(json.dumps(value), 40) if _kind(value) in ('an integer', 'a number') else _kind(value)}")


def _strings(value, where):
    if not isinstance(value, list):
        raise _Bad(f"{where}: want a list of strings, not {_kind(value)}")
    if len(value) > LIST_LIMIT:
        raise _Bad(f"{where}: {len(value)} entries (at most {LIST_LIMIT})")
    for i, item in enumerate(value):
        _string(item, f"{where}[{i}]")


def _string_or_strings(value, where):
    (_string if isinstance(value, str) else _strings)(value, where)


def _info(value, where, depth=0):
    """Descriptive values (versions, platform, models): scalars, lists of scalars, small objects of them."""
    if value is None or isinstance(value, (bool, int, float)):
        return
    if isinstance(value, str):
        return _string(value, where)
    if isinstance(value, list):
        if len(value) > LIST_LIMIT:
            raise _Bad(f"{where}: {len(value)} entries (at most {LIST_LIMIT})")
        for i, item in enumerate(value):
            if isinstance(item, (list, dict)) and depth >= INFO_DEPTH_LIMIT:
                raise _Bad(f"{where}[{i}]: nested too deep")
            _info(item, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        if depth >= INFO_DEPTH_LIMIT:
            raise _Bad(f"{where}: nested too deep (at most {INFO_DEPTH_LIMIT} levels)")
        if len(value) > KEYS_LIMIT:
            raise _Bad(f"{where}: {len(value)} keys (at most {KEYS_LIMIT})")
        for key, item in value.items():
            if len(key) > 200:
                raise _Bad(f"{where}: a key of {len(key)} characters (at most 200)")
            _info(item, f"{where}.{printable(key, 40)}", depth + 1)
        return
    raise _Bad(f"{where}: unexpected {_kind(value)}")


def _object(value, where):
    if not isinstance(value, dict):
        raise _Bad(f"{where}: want an object, not {_kind(value)}")
    _info(value, where)


def _info_object(value, where):
    _object(value, where)


def _info_object_or_null(value, where):
    if value is not None:
        _object(value, where)


def _pipeline(value, where):
    _string(value, where)
    if value not in PIPELINES:
        raise _Bad(f"{where}: unknown pipeline {printable(repr(value), 60)} (known: {', '.join(PIPELINES)})")


_PARAMETERS = {"segmentation_step": _positive, "duration": _positive, "pipeline": _string,
               "segmentation": _info_object, "clustering": _info_object}


def _parameters(value, where):
    _object(value, where)
    for key, check in _PARAMETERS.items():
        if key in value:
            check(value[key], f"{where}.{key}")


# Every key a manifest may hold (dumps/README.md, "Manifest"), with its type. Other keys
# are kept and named in a warning (a newer writer, a porter's own notes); a known key of
# the wrong type is refused.
MANIFEST_KEYS = {
    "format": _integer, "side": _string, "recording": _string, "uri": _string, "audio": _string,
    "pipeline": _pipeline, "audio_sha256": _string, "segmentation_sha256": _string,
    "embedding_sha256": _string, "segmentation_source_sha256": _string, "parameters": _parameters,
    "num_speakers": _number_or_null, "min_speakers": _number_or_null, "max_speakers": _number_or_null,
    "versions": _info_object_or_null, "platform": _info_object_or_null, "models": _info,
    "plda": _info_object_or_null,
    "providers": _strings, "decoder": _string_or_null, "onnx": _string, "given": _strings,
    "embeddings": _string, "implementation": _string, "inputs": _string,
    "not_implemented": _string_or_strings, "precision": _info,
}


def check_manifest(manifest: Any, path: str | Path) -> list[str]:
    """Refuse a manifest that is not an object or holds a known key of the wrong type
    (DumpError naming `path`); the warnings about keys the schema does not know."""
    if not isinstance(manifest, dict):
        raise DumpError(f"{path}: a manifest is a JSON object, not {_kind(manifest)}")
    if len(manifest) > KEYS_LIMIT:
        raise DumpError(f"{path}: {len(manifest)} keys (at most {KEYS_LIMIT})")
    unknown = []
    for key, value in manifest.items():
        check = MANIFEST_KEYS.get(key)
        try:
            (check or _info)(value, printable(key, 60))
        except _Bad as bad:
            raise DumpError(f"{path}: {bad}") from None
        if check is None:
            unknown.append(printable(repr(key), 60))
    if not unknown:
        return []
    shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
    return [f"{path}: unknown manifest key{'s' if len(unknown) > 1 else ''} {shown} (kept, not used by the judge)"]


def _stats(value, where):
    if not isinstance(value, dict):
        raise _Bad(f"{where}: want an object of statistics, not {_kind(value)}")
    for key, item in value.items():
        if key == "per_chunk_max":
            if not isinstance(item, list) or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in item):
                raise _Bad(f"{where}.per_chunk_max: want a list of numbers")
        else:
            _number_or_null(item, f"{where}.{printable(key, 40)}")


def check_noise(stored: Any, path: str | Path) -> dict:
    """`noise.json` (reference/noise.py's) checked: {stage: {"chain"|"isolated": {name: {"max": x, "p99": y,
    "per_chunk_max": [...]}}}} and its checksums; DumpError naming `path` otherwise."""
    try:
        if not isinstance(stored, dict):
            raise _Bad(f"want a JSON object, not {_kind(stored)}")
        for key in ("audio_sha256", "segmentation_sha256", "embedding_sha256", "chunks_note"):
            if key in stored:
                _string_or_null(stored[key], key)
        if "num_chunks" in stored:
            _integer(stored["num_chunks"], "num_chunks")
        chunks = stored.get("chunks", [])
        if not isinstance(chunks, list) or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in chunks):
            raise _Bad("chunks: want a list of chunk indices")
        stages = stored.get("stages", {})
        if not isinstance(stages, dict):
            raise _Bad(f"stages: want an object, not {_kind(stages)}")
        for stage, modes in stages.items():
            if not isinstance(modes, dict):
                raise _Bad(f"stages.{printable(stage, 40)}: want an object, not {_kind(modes)}")
            for mode, names in modes.items():
                if not isinstance(names, dict):
                    raise _Bad(f"stages.{printable(stage, 40)}.{printable(mode, 20)}: want an object, not {_kind(names)}")
                for name, stats in names.items():
                    _stats(stats, f"stages.{printable(stage, 40)}.{printable(mode, 20)}.{printable(name, 40)}")
    except _Bad as bad:
        raise DumpError(f"{path}: {bad}") from None
    return stored


def read_noise(path: str | Path) -> dict:
    """`noise.json` beside a reference dump, read and checked (`check_noise`)."""
    return check_noise(read_json(path, NOISE_LIMIT, "noise file"), path)


# ----------------------------------------------------------------------------- array headers
REAL_KINDS = "biuf"  # booleans, integers, unsigned integers, real floats: what a dump's arrays hold
_KIND_WORDS = {"c": "complex", "O": "Python objects", "V": "structured or raw bytes", "S": "bytes strings",
               "U": "strings", "M": "dates", "m": "time spans"}
TEXT_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64",
               "uint8", "uint16", "uint32", "uint64", "bool")
MAX_AXES = 32
NPY_HEADER_LIMIT = 10000


@dataclass(frozen=True)
class Header:
    """What an array file says it holds, read without reading its data."""

    dtype: np.dtype
    shape: tuple[int, ...]
    fortran: bool
    offset: int  # where the values begin
    size: int  # the file's size in bytes
    format: str  # "npy" or "txt"

    @property
    def count(self) -> int:
        return math.prod(self.shape)


def check_dtype(dtype: np.dtype, path: str | Path) -> None:
    """Refuse anything but real numbers: complex, objects, structured, strings, void, dates."""
    if dtype.names is not None or dtype.subdtype is not None or dtype.hasobject or dtype.kind not in REAL_KINDS:
        words = "structured" if dtype.names is not None or dtype.subdtype is not None else _KIND_WORDS.get(dtype.kind, "not real numbers")
        raise DumpError(f"{path}: dtype {printable(dtype.str, 40)} ({words}): a dump's arrays hold real floats, "
                        "integers or booleans")
    if dtype.itemsize > 8:
        raise DumpError(f"{path}: dtype {printable(dtype.str, 40)} has {dtype.itemsize} bytes per value (at most 8)")


def _check_shape(shape: tuple, path) -> tuple[int, ...]:
    if len(shape) > MAX_AXES or any(not isinstance(n, int) or n < 0 for n in shape):
        raise DumpError(f"{path}: shape {printable(shape, 80)} is not a shape (at most {MAX_AXES} non-negative lengths)")
    return tuple(shape)


def _npy_header(handle, size: int, path) -> Header:
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(handle, max_header_size=NPY_HEADER_LIMIT)
        elif version == (2, 0):
            shape, fortran, dtype = npy.read_array_header_2_0(handle, max_header_size=NPY_HEADER_LIMIT)
        else:
            raise DumpError(f"{path}: .npy format version {version[0]}.{version[1]} (want 1.0 or 2.0)")
    except DumpError:
        raise
    except (ValueError, TypeError, SyntaxError, EOFError, KeyError, OverflowError, RecursionError, MemoryError,
            UnicodeError) as error:
        raise DumpError(f"{path}: not a readable .npy file ({printable(' '.join(str(error).split()), 100)})") from None
    check_dtype(dtype, path)
    shape = _check_shape(shape, path)
    offset = handle.tell()
    data = math.prod(shape) * dtype.itemsize
    if offset + data != size:
        raise DumpError(f"{path}: its header says {printable(shape, 80)} {dtype.name} ({data} bytes of values), "
                        f"the file holds {size - offset} (truncated or damaged)")
    return Header(dtype, shape, bool(fortran), offset, size, "npy")


def npy_header(path: str | Path) -> Header:
    """The header of an .npy file, checked (real dtype, a shape, the file's size), data unread."""
    handle, size = open_regular(path)
    with handle:
        return _npy_header(handle, size, path)


def read_npy(path: str | Path, mmap: bool = False) -> np.ndarray:
    """An .npy file's array, its header checked first (so it never asks for more memory
    than the file holds); memory-mapped read-only when `mmap`."""
    handle, size = open_regular(path)
    with handle:
        header = _npy_header(handle, size, path)
        order = "F" if header.fortran else "C"
        try:
            if mmap and header.count:
                return np.memmap(handle, dtype=header.dtype, mode="r", offset=header.offset, shape=header.shape,
                                 order=order)
            values = np.fromfile(handle, dtype=header.dtype, count=header.count)
        except (OSError, ValueError) as error:
            raise DumpError(f"{path}: unreadable ({printable(' '.join(str(error).split()), 100)})") from None
    if values.size != header.count:
        raise DumpError(f"{path}: {values.size} values read where its header says {header.count} (changed while read?)")
    return values.reshape(header.shape[::-1]).T if header.fortran else values.reshape(header.shape)


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


def _text_header(line: bytes, size: int, path) -> Header:
    want = "(want '# dtype: float32; shape: 21 589 7')"
    if len(line) > TEXT_HEADER_LIMIT:
        raise DumpError(f"{path}: header line longer than {TEXT_HEADER_LIMIT} bytes {want}")
    text = line.decode("utf-8", errors="replace")
    try:
        fields = {k.strip(): v.strip() for k, v in (part.split(":", 1) for part in text.lstrip("#").split(";"))}
        name, lengths = fields["dtype"], fields["shape"].split()
        if len(lengths) > MAX_AXES:
            raise ValueError
        shape = tuple(int(n) for n in lengths)
    except (KeyError, ValueError, TypeError):
        raise DumpError(f"{path}: bad header {printable(repr(text.strip()), 120)} {want}") from None
    if name not in TEXT_DTYPES:
        raise DumpError(f"{path}: dtype {printable(repr(name), 40)} in its header: a text array is one of "
                        f"{', '.join(TEXT_DTYPES)}")
    return Header(np.dtype(name), _check_shape(shape, path), False, len(line), size, "txt")


def text_header(path: str | Path) -> Header:
    """The header line of a text array, checked, its values unread."""
    handle, size = open_regular(path)
    with handle:
        return _text_header(handle.readline(TEXT_HEADER_LIMIT + 1), size, path)


def read_text_array(path: Path) -> np.ndarray:
    """Read what write_text_array wrote (or a porter's writer in another language)."""
    handle, size = open_regular(path)
    with handle:
        header = _text_header(handle.readline(TEXT_HEADER_LIMIT + 1), size, path)
        count = header.count
        body_bytes = size - header.offset
        if count > body_bytes:  # each value takes at least one character and its separator
            raise DumpError(f"{path}: header says {count} values, file has {body_bytes} bytes of them")
        try:
            body = handle.read(body_bytes + 1).decode("ascii")
        except UnicodeDecodeError as error:
            raise DumpError(f"{path}: a byte that is not ASCII text among its values (byte {header.offset + error.start})") from None
        except OSError as error:
            raise DumpError(f"{path}: unreadable ({error.strerror or error})") from None
    dtype = header.dtype
    if not body.strip():
        values = np.zeros(0)
    else:
        parse = np.float64 if dtype.kind == "f" else np.int64
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                values = np.fromstring(body, dtype=parse, sep=" ")
        except (ValueError, DeprecationWarning):
            raise DumpError(f"{path}: a value that is not {'a number' if dtype.kind == 'f' else 'an integer'}") from None
    if values.size != count:
        raise DumpError(f"{path}: header says {count} values, file has {values.size}")
    if dtype.kind == "b" and values.size and not np.isin(values, (0, 1)).all():
        raise DumpError(f"{path}: a bool array holds values other than 0 and 1")
    if dtype.kind in "iu" and values.size:
        info = np.iinfo(dtype)
        if values.min() < info.min or values.max() > info.max:
            raise DumpError(f"{path}: a value outside {dtype.name}'s range")
    with np.errstate(over="ignore"):
        return values.astype(dtype).reshape(header.shape)


# ----------------------------------------------------------------------------- writer
class OutputError(ValueError):
    """An output (--json, --report, --rttm) that cannot be written; one line naming it."""


def check_output(path: str | Path, what: str) -> Path:
    """Where `path` (an output the user named) will be written, links followed; OutputError
    when it is something else than a file to (over)write: a directory, a device (/dev/full),
    a FIFO, or in a folder that is missing or not writable."""
    path = Path(path)
    real = Path(os.path.realpath(path))
    try:
        info = os.stat(real)
    except FileNotFoundError:
        info = None
    except OSError as error:
        raise OutputError(f"{what} {path}: {error.strerror or error}") from None
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise OutputError(f"{what} {path}: {_file_kind(info.st_mode)}, not a file to write")
    if not os.path.isdir(real.parent):
        raise OutputError(f"{what} {path}: no folder {real.parent}")
    if not os.access(real.parent, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path}: the folder {real.parent} is not writable")
    return real


def write_atomic(path: str | Path, data: str | bytes, what: str = "output") -> Path:
    """Write `data` to `path` whole or not at all: into ``.<name>.<pid>.partial`` beside it,
    then renamed over it; on any error (a full disk, a file-size limit, Ctrl-C) the partial
    file is removed and the old file, if any, is left as it was. OutputError (one line) when
    the write fails."""
    target = check_output(path, what)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    payload = data.encode() if isinstance(data, str) else data
    created = False
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:  # left by a process of the same id that was killed
            os.unlink(tmp)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        created = True
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(tmp, target)
        created = False
    except OSError as error:
        raise OutputError(f"cannot write {what} {path}: {error.strerror or error}") from None
    finally:
        if created:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return target


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
    """One recording's dump: ``reader.load(stage, name)``.

    The manifest is read and checked when the reader is made (`check_manifest`;
    `warnings` names the keys it does not know); each stage folder is listed once (again
    only when it changes); every file is checked before it is read (see the module's
    docstring). Anything wrong is one DumpError line naming the file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest = self.path / MANIFEST
        try:
            os.lstat(manifest)
        except (FileNotFoundError, NotADirectoryError):
            raise DumpError(f"{self.path}: no {MANIFEST} (not a dump, or an interrupted one)") from None
        except PermissionError:
            raise DumpError(f"{self.path}: unreadable folder (permission denied)") from None
        except OSError as error:
            raise DumpError(f"{self.path}: unreadable folder ({error.strerror or error})") from None
        self.manifest = read_json(manifest, MANIFEST_LIMIT, "manifest")
        self.warnings: list[str] = check_manifest(self.manifest, manifest)
        self._listings: dict[str, tuple[int, dict[str, Path]]] = {}

    @property
    def pipeline(self) -> str:
        """The pipeline the dump was made with (dumps from before community-1 carry none: 3.1)."""
        return str(self.manifest.get("pipeline") or "3.1")

    def stages(self) -> list[str]:
        """The stages present, in the pipeline's order."""
        try:
            order = pipeline(self.pipeline).stage_names
        except KeyError:
            raise DumpError(f"{self.path}: manifest names an unknown pipeline {printable(repr(self.pipeline), 60)}") from None
        return [s for s in order if os.path.isdir(self.path / s)]

    def _listing(self, stage: str) -> dict[str, Path]:
        """{name: file} of a stage folder (``.npy``/``.txt`` by stem, ``.rttm`` by file name)."""
        folder = self.path / stage
        try:
            info = os.stat(folder)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        except PermissionError:
            raise DumpError(f"{folder}: unreadable stage folder (permission denied)") from None
        except OSError as error:
            raise DumpError(f"{folder}: unreadable stage folder ({error.strerror or error})") from None
        if not stat.S_ISDIR(info.st_mode):
            return {}
        cached = self._listings.get(stage)
        if cached is not None and cached[0] == info.st_mtime_ns:
            return cached[1]
        files: dict[str, Path] = {}
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    name = entry.name
                    if name.endswith(".rttm"):
                        key = name
                    elif name.endswith((".npy", ".txt")) and len(name) > 4:
                        key = name[:-4]
                    else:
                        continue  # not a dump name (notes, editor files): never read
                    if key in files:
                        raise DumpError(f"{folder}: both {printable(key, 200)}.npy and {printable(key, 200)}.txt "
                                        "(a name is one file: keep one)")
                    files[key] = folder / name
        except PermissionError:
            raise DumpError(f"{folder}: unreadable stage folder (permission denied)") from None
        except OSError as error:
            raise DumpError(f"{folder}: unreadable stage folder ({error.strerror or error})") from None
        self._listings[stage] = (info.st_mtime_ns, files)
        return files

    def names(self, stage: str) -> list[str]:
        return sorted(self._listing(stage))

    def has(self, stage: str, name: str) -> bool:
        return name in self._listing(stage)

    def file(self, stage: str, name: str) -> Path:
        """The file that holds `stage`/`name` (DumpError when there is none)."""
        path = self._listing(stage).get(name)
        if path is None:
            raise DumpError(f"{self.path}: {stage}/{printable(name, 200)} missing")
        return path

    def header(self, stage: str, name: str) -> Header | None:
        """An array's header (dtype, shape), its values unread; None for RTTM text."""
        path = self.file(stage, name)
        if name.endswith(".rttm"):
            regular_file(path)
            return None
        return npy_header(path) if path.suffix == ".npy" else text_header(path)

    def load(self, stage: str, name: str, mmap: bool = False) -> np.ndarray | str:
        """An array (memory-mapped read-only when `mmap` and it is .npy) or an RTTM's text."""
        path = self.file(stage, name)
        if name.endswith(".rttm"):
            return read_text(path, RTTM_LIMIT, "RTTM file")
        if path.suffix == ".npy":
            return read_npy(path, mmap=mmap)
        return read_text_array(path)

    def check(self, expected: dict) -> None:
        """Refuse dumps made from other audio or other models: one-line reason."""
        for key in ("audio_sha256", "segmentation_sha256", "embedding_sha256"):
            want, have = expected.get(key), self.manifest.get(key)
            if want is not None and have != want:
                what = key.split("_")[0]
                raise DumpError(
                    f"{self.path}: stale dump, made from other {what} "
                    f"({printable(have, 12)[:12]} != {printable(want, 12)[:12]}); run 'verify.py clean' or rerun"
                )


def recordings(root: str | Path, side: str) -> list[str]:
    folder = Path(root) / side
    if not os.path.isdir(folder):
        return []
    try:
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except PermissionError:
        raise DumpError(f"{folder}: unreadable folder (permission denied)") from None
    except OSError as error:
        raise DumpError(f"{folder}: unreadable folder ({error.strerror or error})") from None


# ----------------------------------------------------------------------------- before judging
# A candidate's array may hold at most SIZE_SLACK times the values of the reference's same
# name, plus SIZE_EXTRA (a port that finds more clusters than pyannote is a finding for the
# verdict, a header asking for terabytes is not); text files at most TEXT_BYTES per value.
SIZE_SLACK, SIZE_EXTRA, TEXT_BYTES = 4, 1 << 16, 64
RTTM_SLACK_SECONDS = 10.0  # past the audio's end by more than this, a turn is named in a warning
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Turn:
    line: int
    start: float
    end: float
    label: str


def rttm_turns(text: str, path: str | Path = "RTTM") -> list[Turn]:
    """The SPEAKER lines of an RTTM text as turns; DumpError naming the file and the line
    when one is not a turn (fewer than 8 fields, a start or duration that is not a finite,
    non-negative number)."""
    turns = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise DumpError(f"{path}: line {number}: a SPEAKER line has at least 8 fields, this one {len(fields)}")
        try:
            start, duration = float(fields[3]), float(fields[4])
        except ValueError:
            raise DumpError(f"{path}: line {number}: start {printable(repr(fields[3]), 30)} and duration "
                            f"{printable(repr(fields[4]), 30)} are not both numbers") from None
        if not (math.isfinite(start) and math.isfinite(duration)) or start < 0 or duration < 0:
            raise DumpError(f"{path}: line {number}: start {printable(fields[3], 30)} and duration "
                            f"{printable(fields[4], 30)} must be finite and not negative")
        turns.append(Turn(number, start, start + duration, fields[7]))
    return turns


def audio_duration(reader: DumpReader) -> float | None:
    """The audio's duration in seconds as the reader's own dumps say it (01's waveform, else
    05's frames), read from headers and the 3-value frame window; None when they do not say."""
    try:
        if reader.has("01-audio", "out_waveform"):
            shape = reader.header("01-audio", "out_waveform").shape
            if shape:
                return shape[-1] / SAMPLE_RATE
        if reader.has("05-count", "out_count") and reader.has("05-count", "out_frames"):
            frames_header, count = reader.header("05-count", "out_frames"), reader.header("05-count", "out_count")
            if frames_header.count == 3 and count.shape:
                start, duration, step = (float(x) for x in np.asarray(reader.load("05-count", "out_frames")).ravel())
                end = start + count.shape[0] * step + duration
                return end if math.isfinite(end) else None
    except (DumpError, ValueError, TypeError):
        return None
    return None


def same_dump(reference: DumpReader, candidate: DumpReader) -> str | None:
    """Why `candidate` is not a candidate but the reference itself (the same folder, or the
    same bytes in every file, manifest included); None when it is not."""
    try:
        if os.path.samefile(reference.path, candidate.path):
            return "is the reference's own folder"
    except OSError:
        return None
    if reference.manifest != candidate.manifest:
        return None
    stages = pipeline(reference.pipeline).stage_names
    if any(reference._listing(s).keys() != candidate._listing(s).keys() for s in stages):
        return None
    pairs = [(reference._listing(s)[n], candidate._listing(s)[n]) for s in stages for n in reference._listing(s)]
    pairs.append((reference.path / MANIFEST, candidate.path / MANIFEST))
    if any(regular_file(a).st_size != regular_file(b).st_size for a, b in pairs):
        return None
    for a, b in pairs:
        first, size = open_regular(a)
        second, _ = open_regular(b)
        with first, second:
            while True:
                x, y = first.read(1 << 20), second.read(1 << 20)
                if x != y:
                    return None
                if not x:
                    break
    return "is a byte-for-byte copy of the reference (every file, manifest included)"


def check_pair(reference: DumpReader, candidate: DumpReader) -> list[str]:
    """Everything the verdict will read, checked before it reads it; DumpError (one line,
    naming the file) on the first thing wrong, else the warnings (findings the verdict
    shows without failing on them here: a turn past the audio's end).

    - both manifests (checked when the readers were made) and the same pipeline;
    - every dump file of both sides a regular file (or a link to one), one file per name;
    - every array a real dtype with a consistent header; a candidate's array of a name the
      reference has: as many axes as the reference's, at most SIZE_SLACK x its values +
      SIZE_EXTRA (and a text file at most TEXT_BYTES per value);
    - every RTTM UTF-8 with well-formed SPEAKER lines, a candidate's at most SIZE_SLACK x
      the reference's bytes + 64 KiB; a turn ending past the audio's end is a warning.
    """
    found: list[str] = []
    if reference.pipeline != candidate.pipeline:
        raise DumpError(f"{candidate.path}: a {candidate.pipeline} dump cannot be judged against a "
                        f"{reference.pipeline} reference ({reference.path})")
    itself = same_dump(reference, candidate)
    if itself:
        raise DumpError(f"{candidate.path}: the candidate {itself} ({reference.path}): nothing to judge")
    stages = pipeline(reference.pipeline).stage_names
    declared = candidate.manifest.get("not_implemented") or []
    for entry in [declared] if isinstance(declared, str) else declared:
        if entry.partition("/")[0] not in stages:
            raise DumpError(f"{candidate.path / MANIFEST}: not_implemented: {printable(repr(entry), 80)} names no stage "
                            f"of pipeline {reference.pipeline}")
    duration = audio_duration(reference) or 0.0
    for stage in stages:
        ours, theirs = reference._listing(stage), candidate._listing(stage)
        for name in ours:
            reference.header(stage, name)
        for name, path in theirs.items():
            regular_file(path)
            if name not in ours:
                continue  # a name only the candidate has: the verdict fails it, never reads it
            if name.endswith(".rttm"):
                bound = SIZE_SLACK * regular_file(ours[name]).st_size + (64 << 10)
                if regular_file(path).st_size > bound:
                    raise DumpError(f"{path}: {regular_file(path).st_size} bytes, more than {SIZE_SLACK}x the "
                                    f"reference's {stage}/{name} + 64 KiB ({bound})")
                turns = rttm_turns(candidate.load(stage, name), path)
                own = max((t.end for t in rttm_turns(reference.load(stage, name), ours[name])), default=0.0)
                limit = max(duration, own) + RTTM_SLACK_SECONDS
                late = [t for t in turns if t.end > limit]
                if late:
                    found.append(f"{path}: {len(late)} turn(s) end past the audio's end ({limit - RTTM_SLACK_SECONDS:.2f} s), "
                                 f"the first at line {late[0].line} ({late[0].end:.6g} s)")
                continue
            want, have = reference.header(stage, name), candidate.header(stage, name)
            if len(have.shape) != len(want.shape):
                raise DumpError(f"{path}: {len(have.shape)} axes {have.shape}, where the reference's {stage}/{name} "
                                f"has {len(want.shape)} {want.shape}")
            most = SIZE_SLACK * want.count + SIZE_EXTRA
            if have.count > most:
                raise DumpError(f"{path}: shape {have.shape} holds {have.count} values, more than {SIZE_SLACK}x the "
                                f"reference's {stage}/{name} {want.shape} + {SIZE_EXTRA}")
            if have.format == "txt" and have.size > TEXT_BYTES * (have.count + 1) + TEXT_HEADER_LIMIT:
                raise DumpError(f"{path}: {have.size} bytes for {have.count} values (at most {TEXT_BYTES} a value)")
    return found
