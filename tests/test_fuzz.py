"""The judge under broken and hostile candidates (docs/cli.md, "Exit status").

One table of bad candidates, references, outputs, options and `--embeddings` inputs, each
run through `verify.main` in this process (a small synthetic dump: milliseconds a case).
Every case asserts its exit status; that an error is exactly one line on stderr and never a
traceback; that no byte from the data reaches stdout raw (ESC, NUL); that nothing was
written but the outputs asked for, and nothing half-written (no ``.partial``) was left.
A Hypothesis sweep generates more manifests and npy headers (skipped without hypothesis).
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import verify
from port.dumps import DumpWriter

REPO = Path(__file__).resolve().parent.parent
STAGES = "01,03-05,14"  # the stages the synthetic reference has
RATE = 16000


# ----------------------------------------------------------------------------- the synthetic reference
def _rttm(turns, uri="rec") -> str:
    return "".join(f"SPEAKER {uri} 1 {s:.3f} {d:.3f} <NA> <NA> {who} <NA> <NA>\n" for s, d, who in turns)


def make_reference(root: Path) -> Path:
    """A small 3.1 reference dump (01, 03-05, 14): what the fuzz cases break."""
    rng = np.random.default_rng(0)
    wave = (rng.standard_normal((1, 2 * RATE)) * 0.1).astype(np.float32)
    log_probs = np.log(rng.dirichlet(np.ones(7), size=(2, 20))).astype(np.float32)
    multilabel = (rng.random((2, 20, 3)) > 0.5).astype(np.float32)
    with DumpWriter(root, "reference", "rec") as writer:
        writer("01-audio", "in_waveform", wave)
        writer("01-audio", "in_sample_rate", np.int64(RATE))
        writer("01-audio", "out_waveform", wave)
        writer("03-segmentation", "out_log_probs", log_probs)
        writer("04-multilabel", "out_multilabel", multilabel)
        writer("05-count", "out_count", multilabel.sum(axis=2).reshape(-1, 1)[:30].astype(np.uint8))
        writer("05-count", "out_frames", np.array([0.0, 0.0619375, 0.016875]))
        writer("14-annotation", "out_diarization.rttm", _rttm([(0.1, 0.8, "SPEAKER_00"), (1.0, 0.7, "SPEAKER_01")]))
        writer("14-annotation", "out_exclusive.rttm", _rttm([(0.1, 0.8, "SPEAKER_00"), (1.0, 0.7, "SPEAKER_01")]))
        writer.commit({"uri": "rec", "audio": "rec.wav", "audio_sha256": "ab" * 32, "pipeline": "3.1",
                       "versions": {"pyannote.audio": "4.0.7"}, "parameters": {"segmentation_step": 0.1}})
    return root / "reference" / "rec"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return make_reference(tmp_path_factory.mktemp("pristine"))


@pytest.fixture
def case(tmp_path, pristine):
    """A fresh reference and candidate (the reference's dump, side "myport") under tmp_path."""
    reference = tmp_path / "ref" / "rec"
    shutil.copytree(pristine, reference)
    candidate = tmp_path / "cand" / "rec"
    shutil.copytree(pristine, candidate)
    manifest = json.loads((candidate / "manifest.json").read_text())
    manifest.update(side="myport", implementation="tests/test_fuzz.py")
    (candidate / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "out").mkdir()
    return Case(tmp_path, reference, candidate)


class Case:
    def __init__(self, root, reference, candidate):
        self.root, self.reference, self.candidate = root, reference, candidate
        self.out = root / "out"

    def manifest(self, side="candidate") -> dict:
        return json.loads((getattr(self, side) / "manifest.json").read_text())

    def write_manifest(self, value, side="candidate", raw: bytes | None = None):
        path = getattr(self, side) / "manifest.json"
        path.write_bytes(raw if raw is not None else json.dumps(value).encode())

    def put(self, stage, name, data: bytes | str | None = None, array=None):
        """Replace the candidate's stage/name (any .npy/.txt of it removed first) by raw bytes or an array."""
        folder = self.candidate / stage
        folder.mkdir(exist_ok=True)
        for old in (folder / f"{name}.npy", folder / f"{name}.txt"):
            if old.exists() or old.is_symlink():
                old.unlink()
        if array is not None:
            np.save(folder / f"{name}.npy", array, allow_pickle=False)
            return folder / f"{name}.npy"
        path = folder / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path


# ----------------------------------------------------------------------------- running
def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under root: (mode, size, mtime) of files, the mode of folders."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            found[str(path.relative_to(root))] = (info.st_mode,) if name in dirnames else (
                info.st_mode, info.st_size, info.st_mtime_ns)
    return found


def run_cli(argv, root: Path | None = None, allowed=()) -> tuple[int, str, str]:
    """verify.main in this process: (status, stdout, stderr); asserts the contract every run keeps."""
    before = snapshot(root) if root else None
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = verify.main([str(a) for a in argv])
    stdout, stderr = out.getvalue(), err.getvalue()
    assert "Traceback" not in stdout + stderr, stderr
    assert "\x1b" not in stdout and "\x00" not in stdout, "a raw control byte reached stdout"
    assert "\x1b" not in stderr and "\x00" not in stderr, "a raw control byte reached stderr"
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
    if status in (2, 3):
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1, stderr
        assert lines[0].startswith("error: " if status == 2 else "internal error: "), stderr
    if root is not None:
        after = snapshot(root)
        assert not [p for p in after if ".partial" in p or p.endswith(".tmp")], "something half-written was left"
        new = {p for p in after if p not in before or after[p] != before[p]}
        unexpected = {p for p in new if not any(p == str(Path(a).relative_to(root)) for a in allowed)}
        assert not unexpected, f"written outside the outputs asked for: {sorted(unexpected)[:5]}"
    return status, stdout, stderr


def compare(c: Case, *options, allowed=()):
    return run_cli(["compare", c.reference, c.candidate, "--stages", STAGES, *options], c.root, allowed)


def npy_bytes(header: str, data: bytes = b"", version=(1, 0)) -> bytes:
    """A hand-made .npy: magic, a header dict as written, then `data`."""
    text = header + " " * ((64 - (len(header) + 11) % 64) % 64) + "\n"
    size = len(text).to_bytes(2 if version == (1, 0) else 4, "little")
    return b"\x93NUMPY" + bytes(version) + size + text.encode("latin1") + data


# ----------------------------------------------------------------------------- the table
def _nested(depth: int) -> bytes:
    return b'{"x": ' + b"[" * depth + b"]" * depth + b"}"


MANIFEST_CASES = {
    # candidate manifests
    "array": (b"[1, 2]", "JSON object, not a list"),
    "null": (b"null", "not null"),
    "string": (b'"side"', "not a string"),
    "nested 100000 deep": (_nested(100_000), "nested"),
    "nested 20 deep": (_nested(20), "nested"),
    "not_implemented 3": (b'{"side": "p", "audio_sha256": "' + b"ab" * 32 + b'", "not_implemented": 3}', "not_implemented"),
    "versions list": (b'{"side": "p", "audio_sha256": "' + b"ab" * 32 + b'", "versions": [1]}', "versions"),
    "side number": (b'{"side": 5, "audio_sha256": "' + b"ab" * 32 + b'"}', "side: want a string"),
    "format true": (b'{"format": true, "audio_sha256": "' + b"ab" * 32 + b'"}', "format: want an integer"),
    "parameters string": (b'{"side": "p", "parameters": "x", "audio_sha256": "' + b"ab" * 32 + b'"}', "parameters"),
    "segmentation_step negative": (b'{"side": "p", "parameters": {"segmentation_step": -1}}', "segmentation_step"),
    "segmentation_step NaN": (b'{"side": "p", "parameters": {"segmentation_step": NaN}}', "segmentation_step"),
    "pipeline unknown": (b'{"side": "p", "pipeline": "nope"}', "unknown pipeline"),
    "pipeline object": (b'{"side": "p", "pipeline": {"a": 1}}', "pipeline"),
    "not UTF-8": (b'{"side": "\xff\xfe"}', "not UTF-8"),
    "empty": (b"", "empty manifest"),
    "truncated": (b'{"side": "p", "audio', "unreadable manifest"),
    "2 MiB": (b'{"side": "' + b"x" * (2 << 20) + b'"}', "more than a manifest may have"),
    "huge integer": (b'{"format": ' + b"9" * 100_000 + b"}", "manifest"),
    "string 10000 chars": (b'{"side": "' + b"x" * 10_000 + b'"}', "at most"),
    "providers not strings": (b'{"side": "p", "providers": [1]}', "providers"),
    "not_implemented names no stage": (b'{"side": "p", "audio_sha256": "' + b"ab" * 32 + b'", "not_implemented": ["99-nope"]}',
                                       "names no stage"),
    "platform nested": (b'{"side": "p", "platform": {"a": {"b": {"c": {"d": {"e": 1}}}}}}', "nested too deep"),
}


@pytest.mark.parametrize("name", list(MANIFEST_CASES))
def test_a_bad_candidate_manifest_is_one_line(case, name):
    raw, words = MANIFEST_CASES[name]
    case.write_manifest(None, raw=raw)
    status, _, err = compare(case)
    assert status == 2, err
    assert words.lower() in err.lower() and "manifest.json" in err, err


@pytest.mark.parametrize("name", ["array", "nested 100000 deep", "parameters string", "not UTF-8", "segmentation_step NaN"])
def test_a_bad_reference_manifest_is_one_line(case, name):
    raw, words = MANIFEST_CASES[name]
    case.write_manifest(None, side="reference", raw=raw)
    status, _, err = compare(case)
    assert status == 2 and str(case.reference / "manifest.json") in err, err


def test_unknown_keys_are_kept_and_warned_about(case):
    manifest = case.manifest()
    manifest["platform"] = {"machine": "x86_64", "numpy_simd": "AVX512_SKX", "blas": "openblas 0.3"}
    manifest["my_notes"] = {"built": "yesterday"}
    case.write_manifest(manifest)
    status, out, err = compare(case)
    assert status == 0, out + err
    assert "unknown manifest key 'my_notes'" in " ".join(out.split()) and "manifest key 'platform'" not in out


@pytest.mark.parametrize("where", ["manifest", "npy"])
@pytest.mark.parametrize("kind", ["directory", "fifo", "dev-zero", "proc-kmsg", "proc-environ", "dangling"])
def test_a_file_that_is_not_a_regular_file_is_refused_without_blocking(case, where, kind):
    path = case.candidate / "manifest.json" if where == "manifest" else case.candidate / "03-segmentation" / "out_log_probs.npy"
    path.unlink()
    target = {"dev-zero": "/dev/zero", "proc-kmsg": "/proc/kmsg", "proc-environ": "/proc/self/environ",
              "dangling": str(case.root / "nowhere")}.get(kind)
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        if kind == "proc-kmsg" and not os.path.exists(target):
            pytest.skip("no /proc/kmsg here")
        path.symlink_to(target)
    began = time.monotonic()
    status, _, err = compare(case)
    assert time.monotonic() - began < 30, "blocked on a special file"
    assert status == 2 and str(path) in err, err


def test_a_link_to_a_regular_file_outside_the_tree_is_followed(case):
    """The documented choice: links are followed wherever they point when the target is a regular file."""
    outside = case.root / "elsewhere.npy"
    source = case.candidate / "03-segmentation" / "out_log_probs.npy"
    shutil.move(source, outside)
    source.symlink_to(outside)
    status, out, err = compare(case)
    assert status == 0, out + err


def test_unreadable_files_are_one_line(case, monkeypatch):
    """PermissionError on a manifest, a stage folder, an array or an RTTM (root reads anything, so
    the denial is simulated at os.open / os.scandir, where the reader asks)."""
    import port.dumps as dumps

    real_open, real_scandir = os.open, os.scandir
    for victim in ("manifest.json", "out_log_probs.npy", "out_diarization.rttm", "noise.json", "04-multilabel"):
        if victim == "noise.json":
            (case.reference / "noise.json").write_text(json.dumps({"stages": {}}))

        def denied_open(path, *args, victim=victim):
            if str(path).endswith(victim):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args)

        def denied_scandir(path, victim=victim):
            if str(path).endswith(victim):
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)

        monkeypatch.setattr(dumps.os, "open", denied_open)
        monkeypatch.setattr(dumps.os, "scandir", denied_scandir)
        status, _, err = compare(case)
        monkeypatch.undo()
        assert status == 2 and victim in err and "permission denied" in err.lower(), (victim, err)


ARRAY_CASES = {
    # (file name in 03-segmentation, bytes, words in the error)
    "huge npy shape": ("out_log_probs.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000, 7), }"), "header says"),
    "huge npy shape 1e12": ("out_log_probs.npy", npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (10**12,), }"), "readable"),
    "structured npy": ("out_log_probs.npy", npy_bytes("{'descr': [('a', '<f4'), ('b', '<f4')], 'fortran_order': False, 'shape': (2, 20, 7), }", bytes(2 * 20 * 7 * 8)), "structured"),
    "subarray npy": ("out_log_probs.npy", npy_bytes("{'descr': ('<f4', (7,)), 'fortran_order': False, 'shape': (2, 20), }", bytes(2 * 20 * 7 * 4)), "structured"),
    "object npy": ("out_log_probs.npy", npy_bytes("{'descr': '|O', 'fortran_order': False, 'shape': (2, 20, 7), }", bytes(2 * 20 * 7 * 8)), "objects"),
    "string npy": ("out_log_probs.npy", npy_bytes("{'descr': '<U3', 'fortran_order': False, 'shape': (2, 20, 7), }", bytes(2 * 20 * 7 * 12)), "strings"),
    "bytes npy": ("out_log_probs.npy", npy_bytes("{'descr': '|S4', 'fortran_order': False, 'shape': (2, 20, 7), }", bytes(2 * 20 * 7 * 4)), "strings"),
    "void npy": ("out_log_probs.npy", npy_bytes("{'descr': '|V4', 'fortran_order': False, 'shape': (2, 20, 7), }", bytes(2 * 20 * 7 * 4)), "raw bytes"),
    "datetime npy": ("out_log_probs.npy", npy_bytes("{'descr': '<M8[s]', 'fortran_order': False, 'shape': (2, 20, 7), }", bytes(2 * 20 * 7 * 8)), "dates"),
    "float128 npy": ("out_log_probs.npy", npy_bytes("{'descr': '<f16', 'fortran_order': False, 'shape': (2, 20, 7), }", bytes(2 * 20 * 7 * 16)), "bytes per value"),
    "truncated npy": ("out_log_probs.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 20, 7), }", bytes(100)), "truncated"),
    "trailing bytes npy": ("out_log_probs.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 20, 7), }", bytes(2 * 20 * 7 * 4 + 9)), "damaged"),
    "garbage npy": ("out_log_probs.npy", os.urandom(300), "readable .npy"),
    "empty npy": ("out_log_probs.npy", b"", "readable .npy"),
    "header only npy": ("out_log_probs.npy", b"\x93NUMPY\x01\x00", "readable .npy"),
    "npy version 3": ("out_log_probs.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 20, 7), }", bytes(560 * 4), (3, 0)), "version 3.0"),
    "npy header eval": ("out_log_probs.npy", npy_bytes("{'descr': __import__('os').system('true'), 'fortran_order': False, 'shape': (1,), }"), "readable .npy"),
    "negative shape npy": ("out_log_probs.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 20, 7), }"), "npy"),
    "rank 2 npy": ("out_log_probs.npy", None, "axes"),
    "5x the values npy": ("out_log_probs.npy", None, "more than 4x"),
    "huge txt shape": ("out_log_probs.txt", "# dtype: float32; shape: 1000000000 1000 7\n1 2 3\n", "more than 4x"),
    "complex txt": ("out_log_probs.txt", "# dtype: complex64; shape: 2 20 7\n" + "1 " * 280 + "\n", "complex64"),
    "structured txt": ("out_log_probs.txt", "# dtype: f4,f4; shape: 2 20 7\n" + "1 " * 280 + "\n", "dtype"),
    "object txt": ("out_log_probs.txt", "# dtype: object; shape: 2 20 7\n" + "1 " * 280 + "\n", "dtype"),
    "bad txt header": ("out_log_probs.txt", "dtype float32 shape 2 20 7\n1\n", "bad header"),
    "txt abc value": ("out_log_probs.txt", "# dtype: float32; shape: 2 20 7\n" + "1 " * 279 + "abc\n", "not a number"),
    "txt too few values": ("out_log_probs.txt", "# dtype: float32; shape: 2 20 7\n" + "1 " * 100 + "\n", "header says"),
    "txt not ASCII": ("out_log_probs.txt", "# dtype: float32; shape: 2 20 7\n" + "1 " * 279 + "\u00e9\n", "not ASCII"),
    "txt long header": ("out_log_probs.txt", "# dtype: float32; shape: " + "1 " * 5000 + "\n", "header"),
    "txt empty": ("out_log_probs.txt", "", "bad header"),
}


@pytest.mark.parametrize("name", list(ARRAY_CASES))
def test_a_bad_array_is_one_line_naming_its_file(case, name):
    file, data, words = ARRAY_CASES[name]
    if name == "rank 2 npy":
        path = case.put("03-segmentation", "out_log_probs", array=np.zeros((40, 7), np.float32))
    elif name == "5x the values npy":
        path = case.put("03-segmentation", "out_log_probs", array=np.zeros((2000, 20, 7), np.float32))
    else:
        path = case.put("03-segmentation", file.rsplit(".", 1)[0], data=b"")
        path.unlink()
        path = case.candidate / "03-segmentation" / file
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    status, _, err = compare(case)
    assert status == 2, err
    assert str(path) in err and words.lower() in err.lower(), err


def test_a_complex_candidate_does_not_pass(case):
    reference = np.load(case.reference / "03-segmentation" / "out_log_probs.npy")
    case.put("03-segmentation", "out_log_probs", array=reference.astype(np.complex64) + 1e6j)
    status, _, err = compare(case)
    assert status == 2 and "complex" in err, err


@pytest.mark.parametrize("kind", ["bool 2", "uint8 256", "int -1 for uint8"])
def test_text_integers_out_of_their_range_are_refused(case, kind):
    text = {"bool 2": "# dtype: bool; shape: 30 1\n" + "2\n" * 30,
            "uint8 256": "# dtype: uint8; shape: 30 1\n" + "256\n" * 30,
            "int -1 for uint8": "# dtype: uint8; shape: 30 1\n" + "-1\n" * 30}[kind]
    (case.candidate / "05-count" / "out_count.npy").unlink()
    (case.candidate / "05-count" / "out_count.txt").write_text(text)
    status, _, err = compare(case)
    assert status == 2 and "out_count.txt" in err, err


def test_both_npy_and_txt_for_one_name_are_refused(case):
    from port.dumps import write_text_array

    write_text_array(case.candidate / "03-segmentation" / "out_log_probs.txt",
                     np.load(case.candidate / "03-segmentation" / "out_log_probs.npy"))
    status, _, err = compare(case)
    assert status == 2 and "both out_log_probs.npy and out_log_probs.txt" in err, err


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_and_inf_candidates_fail_without_numpy_warnings(case, value):
    values = np.load(case.candidate / "03-segmentation" / "out_log_probs.npy")
    values[0, 3, 2] = value
    values[1, 0, :] = -value
    case.put("03-segmentation", "out_log_probs", array=values)
    status, out, err = compare(case)  # run_cli asserts no RuntimeWarning was raised
    assert status == 1 and "NaN/inf on one side only" in " ".join(out.split()), out + err


# ----------------------------------------------------------------------------- escapes
HOSTILE = "\x1b[2J\x1b[H all stages pass\x00 [/red] [link=https://evil.example]x[/link] <script>alert(1)</script>\nfake line"


def test_hostile_manifest_strings_are_escaped_on_the_terminal_and_the_page(case):
    manifest = case.manifest()
    manifest.update(side=HOSTILE, implementation=HOSTILE, uri=HOSTILE)
    manifest[HOSTILE] = HOSTILE  # an unknown key: named in a warning
    case.write_manifest(manifest)
    page = case.out / "page.html"
    status, out, err = compare(case, "--report", page, allowed=(page,))
    assert status == 0, out + err
    flat = " ".join(out.split())
    assert "[/red]" in flat and "[link=https://evil.example]" in flat  # shown as written, not swallowed as markup
    assert "\\x1b[2J" in flat and "\\x00" in flat and "\\n" in flat
    text = page.read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "\x1b" not in text and "\x00" not in text


def test_hostile_file_names_are_escaped(case):
    folder = case.candidate / "03-segmentation"
    names = ["x\x1b[31mred", "y\nnewline", "[link=file:x]z", "w[bold]", "v:red_circle:"]  # ("/" ends a file name)
    for name in names:
        np.save(folder / f"{name}.npy", np.zeros(1))
    (folder / "bad\udcff.npy".encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")).write_bytes(b"")
    status, out, err = compare(case)
    assert status in (1, 2), out + err
    if status == 1:  # names only the candidate has: failed, shown as they are
        flat = " ".join(out.split())
        assert "[link=file:x]z" in flat and "w[bold]" in flat and "v:red_circle:" in flat


def test_hostile_names_in_errors_are_escaped(case):
    evil = case.root / "\x1b[2Jevil\nname[/red]" / "rec"
    shutil.move(case.candidate, evil)
    (evil / "03-segmentation" / "out_log_probs.npy").write_bytes(b"garbage")
    status, _, err = run_cli(["compare", case.reference, evil], case.root)
    assert status == 2 and "\\x1b[2Jevil\\nname[/red]" in err, err


# ----------------------------------------------------------------------------- RTTM
RTTM_CASES = {
    "not UTF-8": (b"SPEAKER rec 1 0.100 0.800 <NA> <NA> SPEAKER_00 <NA> \xff\n", "not UTF-8"),
    "start abc": (b"SPEAKER rec 1 abc 0.800 <NA> <NA> SPEAKER_00 <NA> <NA>\n", "not both numbers"),
    "NaN start": (b"SPEAKER rec 1 nan 0.800 <NA> <NA> SPEAKER_00 <NA> <NA>\n", "finite"),
    "negative duration": (b"SPEAKER rec 1 0.1 -5 <NA> <NA> SPEAKER_00 <NA> <NA>\n", "not negative"),
    "short line": (b"SPEAKER rec 1 0.1\n", "at least 8 fields"),
    "huge": (b"SPEAKER rec 1 0.1 0.1 <NA> <NA> SPEAKER_00 <NA> <NA>\n" * 10_000, "more than 4x"),
}


@pytest.mark.parametrize("name", list(RTTM_CASES))
def test_a_damaged_rttm_is_one_line(case, name):
    data, words = RTTM_CASES[name]
    path = case.candidate / "14-annotation" / "out_diarization.rttm"
    path.write_bytes(data)
    status, _, err = compare(case)
    assert status == 2 and str(path) in err and words in err, err


@pytest.mark.parametrize("start", [1e7, 1e12])
def test_a_turn_past_the_end_is_a_finding_not_a_grid(case, start):
    path = case.candidate / "14-annotation" / "out_diarization.rttm"
    path.write_text(path.read_text() + _rttm([(start, 1.0, "SPEAKER_00")]))
    page = case.out / "page.html"
    began = time.monotonic()
    status, out, err = compare(case, "--report", page, allowed=(page,))
    assert time.monotonic() - began < 60
    assert status == 1, out + err
    assert "past the audio's end" in " ".join(out.split())
    assert "past the audio's end" in html.unescape(page.read_text())


def test_the_report_finds_differences_from_boundaries_as_a_grid_would():
    """The sweep (no grid to allocate) gives what a 10 ms grid gives on turns on that grid."""
    from harness.report import diarization_differences

    rng = np.random.default_rng(1)
    for _ in range(50):
        sides = [[(float(s), float(s + d), f"S{k}") for s, d, k in zip(rng.integers(0, 300, 6), rng.integers(0, 80, 6),
                                                                         rng.integers(0, 3, 6))] for _ in range(2)]
        grid = np.arange(0, 400)
        active = [{(t, who) for s, e, who in turns for t in grid if s <= t < e} for turns in sides]
        differ = {t for t in grid if {w for tt, w in active[0] if tt == t} != {w for tt, w in active[1] if tt == t}}
        spans = diarization_differences(*sides)
        assert sum(e - s for s, e in spans) == len(differ)
        assert all(s < e for s, e in spans) and all(a[1] < b[0] for a, b in zip(spans, spans[1:]))
    assert diarization_differences([(0.0, 1.0, "A")], [(0.0, 1.0, "A"), (1e12, 1e12 + 1, "A")]) == [(1e12, 1e12 + 1)]


# ----------------------------------------------------------------------------- noise.json
NOISE_CASES = {
    "array": "[1]",
    "stages list": '{"stages": []}',
    "max string": '{"stages": {"03-segmentation": {"chain": {"out_log_probs": {"max": "x"}}}}}',
    "mode list": '{"stages": {"03-segmentation": {"chain": [1]}}}',
    "chunks strings": '{"chunks": ["a"], "stages": {}}',
    "not JSON": "{nope",
}


@pytest.mark.parametrize("name", list(NOISE_CASES))
def test_a_damaged_noise_file_is_one_line(case, name):
    (case.reference / "noise.json").write_text(NOISE_CASES[name])
    status, _, err = compare(case)
    assert status == 2 and "noise.json" in err, err


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_a_noise_file_that_is_not_a_file_is_refused_without_blocking(case, kind):
    path = case.reference / "noise.json"
    {"fifo": lambda: os.mkfifo(path), "dev-zero": lambda: path.symlink_to("/dev/zero"), "directory": path.mkdir}[kind]()
    status, _, err = compare(case)
    assert status == 2 and "noise.json" in err, err


# ----------------------------------------------------------------------------- outputs
def test_outputs_that_cannot_be_written_are_one_line_and_leave_nothing(case):
    folder = case.out / "a-folder"
    folder.mkdir()
    for option, target in (("--json", folder), ("--report", folder), ("--json", "/dev/full"), ("--report", "/dev/full"),
                           ("--json", case.out / "missing" / "x.json"), ("--json", "/proc/verify-fuzz.json"),
                           ("--json", case.candidate / "report.json"), ("--report", case.reference / "page.html")):
        status, _, err = compare(case, option, target)
        assert status == 2 and option in err, (option, target, err)
    assert os.path.exists("/dev/full") and stat.S_ISCHR(os.stat("/dev/full").st_mode)  # never replaced by a file


def test_json_and_report_on_one_path_are_refused(case):
    target = case.out / "both"
    status, _, err = compare(case, "--json", target, "--report", target)
    assert status == 2 and "same file" in err, err
    assert not target.exists()


def test_json_is_written_whole_over_an_old_one(case):
    target = case.out / "v.json"
    target.write_text("old")
    status, out, err = compare(case, "--json", target, allowed=(target,))
    assert status == 0, out + err
    written = json.loads(target.read_text())
    assert written["outcome"] == "pass" and written["passed"] is True


def test_json_under_a_file_size_limit_leaves_the_old_file_whole(case):
    """RLIMIT_FSIZE below the JSON's size: exit 2, one line, the old file as it was, nothing partial."""
    import resource

    target = case.out / "v.json"
    target.write_text("old")

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    result = subprocess.run([sys.executable, str(REPO / "verify.py"), "compare", str(case.reference), str(case.candidate),
                             "--stages", STAGES, "--json", str(target)], capture_output=True, text=True, cwd=REPO,
                            preexec_fn=limit, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "File too large" in lines[0], result.stderr
    assert target.read_text() == "old"
    assert not [p for p in case.out.iterdir() if p.name != "v.json"]


# ----------------------------------------------------------------------------- options and pairs
@pytest.mark.parametrize("argv, words", [
    (["--stages", ""], "--stages is empty"),
    (["--stages", " "], "--stages is empty"),
    (["--stages", ","], "cannot read"),
    (["--stages", "99"], "outside"),
    (["--stages", "x[/red]"], "cannot read"),
    (["--nope"], "unrecognized arguments"),
])
def test_bad_options_are_one_line(case, argv, words):
    status, _, err = run_cli(["compare", case.reference, case.candidate, *argv], case.root)
    assert status == 2 and words in err, err


@pytest.mark.parametrize("argv, words", [
    (["inputs", "03", "--pipeline", "nope"], "invalid choice"),
    (["inputs", "nope"], "has no stage"),
    (["inputs", "99-x", "--pipeline", "community-1"], "has no stage"),
    (["nope"], "invalid choice"),
    ([], "required"),
    (["compare", "only-one"], "required"),
    (["run", "--pipeline", "nope"], "invalid choice"),
    (["run", "-j", "x"], "invalid int"),
])
def test_bad_command_lines_are_one_line(argv, words):
    status, _, err = run_cli(argv)
    assert status == 2 and words in err, err


def test_inputs_lists_shapes_from_headers_and_escapes_names(case):
    np.save(case.reference / "03-segmentation" / "in_x\x1b[2J.npy", np.zeros(3))
    status, out, err = run_cli(["inputs", "04", case.reference], case.root)
    assert status == 0 and "03-segmentation/out_log_probs  (2, 20, 7) float32" in out, out + err


def test_the_reference_itself_is_refused(case):
    status, _, err = run_cli(["compare", case.reference, case.reference], case.root)
    assert status == 2 and "reference's own folder" in err, err
    copy = case.root / "copy" / "rec"
    shutil.copytree(case.reference, copy)
    status, _, err = run_cli(["compare", case.reference, copy, "--stages", STAGES], case.root)
    assert status == 2 and "byte-for-byte copy" in err, err


@pytest.mark.parametrize("change, words", [
    ({"pipeline": "community-1"}, "cannot be judged against"),
    ({"audio_sha256": "cd" * 32}, "other audio"),
])
def test_a_candidate_of_something_else_is_refused(case, change, words):
    case.write_manifest({**case.manifest(), **change})
    status, _, err = compare(case)
    assert status == 2 and words in err, err


def test_missing_folders_are_one_line(case):
    status, _, err = run_cli(["compare", case.reference, case.root / "nowhere"], case.root)
    assert status == 2 and "no such dump folder" in err, err


# ----------------------------------------------------------------------------- nothing judged
def test_a_candidate_that_declares_everything_not_implemented_is_not_a_pass(case, pristine):
    for folder in case.candidate.iterdir():
        if folder.is_dir():
            shutil.rmtree(folder)
    manifest = case.manifest()
    manifest["not_implemented"] = ["01-audio", "03-segmentation", "04-multilabel", "05-count", "14-annotation"]
    case.write_manifest(manifest)
    target = case.out / "v.json"
    status, out, err = compare(case, "--json", target, allowed=(target,))
    assert status == 4, out + err
    assert "nothing judged" in out
    written = json.loads(target.read_text())
    assert written["outcome"] == "nothing judged" and written["passed"] is False


def test_only_declared_stages_selected_is_nothing_judged(case):
    shutil.rmtree(case.candidate / "03-segmentation")
    case.write_manifest({**case.manifest(), "not_implemented": ["03-segmentation"]})
    status, out, err = run_cli(["compare", case.reference, case.candidate, "--stages", "03"], case.root)
    assert status == 4, out + err


# ----------------------------------------------------------------------------- unforeseen
def test_an_unforeseen_error_is_exit_3_with_a_hint_and_debug_shows_the_traceback(case, monkeypatch):
    import harness.compare

    def broken(*args, **kwargs):
        raise TypeError("something the judge did not foresee")

    monkeypatch.setattr(harness.compare, "judge", broken)
    status, _, err = compare(case)
    assert status == 3 and "report it" in err and "--debug" in err, err
    out, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(errors):
        status = verify.main(["compare", str(case.reference), str(case.candidate), "--stages", STAGES, "--debug"])
    assert status == 3 and "Traceback" in errors.getvalue() and "something the judge did not foresee" in errors.getvalue()


def test_a_numpy_value_error_is_unforeseen_not_bad_input(case, monkeypatch):
    import harness.compare

    def broken(*args, **kwargs):
        np.zeros(3).reshape(2, 2)

    monkeypatch.setattr(harness.compare, "judge", broken)
    status, _, err = compare(case)
    assert status == 3, err


# ----------------------------------------------------------------------------- --embeddings inputs
def _given(folder: Path, segmentations=None, embeddings=None, window=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    np.savez(folder / "segmentations.npz",
             segmentations=segmentations if segmentations is not None else (rng.random((4, 20, 3)) > 0.5).astype(np.float32))
    np.savez(folder / "raw_embeddings.npz",
             embeddings=embeddings if embeddings is not None else rng.standard_normal((4, 3, 8)).astype(np.float32))
    if window is not None:
        np.savez(folder / "reconstruction.npz", **window)
    return folder


WINDOW = {"chunk_start": 0.0, "chunk_duration": 10.0, "chunk_step": 1.0, "frame_start": 0.0,
          "frame_duration": 0.0619375, "frame_step": 0.016875}


def _break_given(folder: Path, name: str) -> str:
    """Break a good --embeddings folder one way; the words its error must hold."""
    if name == "empty chunk_start":
        _given(folder, window={**WINDOW, "chunk_start": np.zeros(0)})
        return "chunk_start"
    if name == "abc in an npz":
        _given(folder, window={**WINDOW, "chunk_step": np.array("abc")})
        return "reconstruction.npz"
    if name == "plain npy named npz":
        np.save(folder / "segmentations.npz.npy", np.zeros((4, 20, 3), np.float32))
        os.replace(folder / "segmentations.npz.npy", folder / "segmentations.npz")
        return "plain .npy"
    if name == "complex segmentations":
        _given(folder, segmentations=np.zeros((4, 20, 3), np.complex64))
        return "complex"
    if name == "object embeddings":
        with zipfile.ZipFile(folder / "raw_embeddings.npz", "w") as archive:
            archive.writestr("embeddings.npy", npy_bytes("{'descr': '|O', 'fortran_order': False, 'shape': (4, 3, 8), }", bytes(96 * 8)))
        return "objects"
    if name == "missing key":
        np.savez(folder / "raw_embeddings.npz", other=np.zeros(3))
        return "no key 'embeddings'"
    if name == "huge header":
        with zipfile.ZipFile(folder / "raw_embeddings.npz", "w") as archive:
            archive.writestr("embeddings.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 3, 256), }"))
        return "damaged"
    if name == "garbage zip":
        (folder / "segmentations.npz").write_bytes(b"PK\x03\x04" + os.urandom(200))
        return "unreadable npz"
    if name == "fifo":
        (folder / "segmentations.npz").unlink()
        os.mkfifo(folder / "segmentations.npz")
        return "FIFO"
    if name == "2 axes":
        _given(folder, embeddings=np.zeros((4, 24), np.float32))
        return "want 3 axes"
    if name == "int segmentations":
        _given(folder, segmentations=np.zeros((4, 20, 3), np.int64))
        return "not float"
    if name == "not binarized":
        _given(folder, segmentations=np.full((4, 20, 3), 0.5, np.float32))
        return "not binarized"
    if name == "negative step":
        _given(folder, window={**WINDOW, "chunk_step": -1.0})
        return "positive"
    if name == "capture rttm not UTF-8":
        (folder / "reference.rttm").write_bytes(b"SPEAKER x 1 0.0 1.0 <NA> <NA> \xff <NA> <NA>\n")
        return "reference.rttm"
    if name == "capture rttm to /dev/zero":
        (folder / "reference.rttm").symlink_to("/dev/zero")
        return "character device"
    raise KeyError(name)


GIVEN_CASES = ["empty chunk_start", "abc in an npz", "plain npy named npz", "complex segmentations", "object embeddings",
               "missing key", "huge header", "garbage zip", "fifo", "2 axes", "int segmentations", "not binarized",
               "negative step", "capture rttm not UTF-8", "capture rttm to /dev/zero"]


@pytest.mark.parametrize("name", GIVEN_CASES)
def test_bad_embeddings_inputs_are_one_line(tmp_path, name):
    folder = _given(tmp_path / "given", window=WINDOW)
    words = _break_given(folder, name)
    status, _, err = run_cli(["run", "--embeddings", folder, "--dumps", tmp_path / "dumps"], tmp_path)
    assert status == 2 and words in err and str(folder) in err, err
    assert not (tmp_path / "dumps").exists()


def test_good_embeddings_inputs_load(tmp_path):
    from port.inputs import load_given

    given = load_given(_given(tmp_path / "given", window=WINDOW))
    assert given["segmentations"].shape == (4, 20, 3) and given["chunks"] == (0.0, 10.0, 1.0)


# ----------------------------------------------------------------------------- cost, cache
@pytest.mark.parametrize("small_count", [500, pytest.param(5000, marks=pytest.mark.slow)])
def test_the_cost_is_linear_in_the_number_of_stray_files(case, small_count):
    """Stray files: the reader lists a folder once, the table names the first few; 4x the files
    cost at most 8x the time (a ratio within one process, not a time; slow: 5,000 against 20,000)."""
    def timed(count):
        folder = case.candidate / "03-segmentation"
        for old in folder.glob("stray*"):
            old.unlink()
        for i in range(count):
            (folder / f"stray{i}.npy").write_bytes(b"")
        began = time.perf_counter()
        status, out, _ = compare(case)
        assert status == 1 and "and " in out
        return time.perf_counter() - began

    small, large = timed(small_count), timed(4 * small_count)
    assert large < 8 * small + 1.0, (small, large)


def test_importing_the_port_keeps_onnx_runtime_out_of_the_home_cache(tmp_path):
    pytest.importorskip("onnxruntime")
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("ORT_DISABLE_TELEMETRY", None)
    subprocess.run([sys.executable, "-c", "import port, onnxruntime"], cwd=REPO, env=env, check=True, timeout=120)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], list(tmp_path.rglob("*"))


# ----------------------------------------------------------------------------- generated
hypothesis = pytest.importorskip("hypothesis", reason="hypothesis not installed (pip install -e '.[test]')")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_scalars = st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats() | st.text(max_size=20)
def _nest(inner):
    return st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4))


_json = st.recursive(_scalars, _nest, max_leaves=20)
_keys = st.sampled_from(["side", "pipeline", "parameters", "versions", "platform", "not_implemented", "inputs",
                         "format", "providers", "given", "models", "plda", "num_speakers", "decoder", "audio_sha256"])


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(_keys | st.text(max_size=10), _json, max_size=6))
def test_generated_manifests_never_crash(case, manifest):
    base = case.manifest()
    case.write_manifest({**base, **manifest} if "audio_sha256" not in manifest else {**base, **manifest})
    status, out, err = compare(case)
    assert status in (0, 1, 2, 4), err


_descr = st.sampled_from(["'<f4'", "'<f8'", "'<i8'", "'|b1'", "'<c8'", "'|O'", "'<U2'", "[('a', '<f4')]", "'<f2'", "'|u1'",
                          "'>f4'", "'<m8'", "42", "None", "'zz'"])
_shape = st.lists(st.integers(-2, 10**13), max_size=4).map(lambda s: "(" + "".join(f"{n}, " for n in s) + ")")


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_descr, st.booleans(), _shape, st.integers(0, 4096))
def test_generated_npy_headers_never_crash(case, descr, fortran, shape, size):
    header = f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"
    path = case.candidate / "03-segmentation" / "out_log_probs.npy"
    path.write_bytes(npy_bytes(header, bytes(size)))
    status, out, err = compare(case)
    assert status in (0, 1, 2), err


# ----------------------------------------------------------------------------- on real dumps (slow)
@pytest.mark.slow
def test_hostile_variants_of_a_real_port_dump(dumps, tmp_path):
    """The port's own dump of test_16k, made hostile three ways, judged with --json and --report."""
    made = dumps("test_16k")
    for variant in ("markup and a late turn", "complex embeddings", "huge fbank header"):
        root = tmp_path / variant.replace(" ", "-")
        candidate = root / "cand" / made["port"].name
        shutil.copytree(made["port"], candidate)
        manifest = json.loads((candidate / "manifest.json").read_text())
        expected = 1
        if variant == "markup and a late turn":
            manifest["side"] = HOSTILE
            rttm = candidate / "14-annotation" / "out_diarization.rttm"
            rttm.write_text(rttm.read_text() + _rttm([(1e12, 1.0, "SPEAKER_00")], uri="test_16k"))
        elif variant == "complex embeddings":
            values = np.load(candidate / "08-embeddings" / "out_embeddings.npy")
            np.save(candidate / "08-embeddings" / "out_embeddings.npy", values.astype(np.complex64) + 1e6j)
            expected = 2
        else:
            (candidate / "06-fbank" / "out_fbank.npy").write_bytes(
                npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (10000000, 998, 80), }"))
            expected = 2
        (candidate / "manifest.json").write_text(json.dumps({**manifest, "side": manifest["side"] + " port"}))
        (root / "out").mkdir()
        outputs = (root / "out" / "v.json", root / "out" / "p.html")
        status, out, err = run_cli(["compare", made["reference"], candidate, "--json", outputs[0], "--report", outputs[1]],
                                   root, allowed=outputs if expected == 1 else ())
        assert status == expected, (variant, out[-2000:], err)
        if expected == 1:
            assert json.loads(outputs[0].read_text())["outcome"] == "drift"
            assert "<script>" not in outputs[1].read_text()
