"""The porter's kit: the C++/Rust/JavaScript dump writers and readers, and the C++ example port.

Each language's test driver (tests/writers/copy_dump.*) reads every array of the
reference's dump with that language's reader and writes it again with its writer, as a
port writes its outputs. What comes out must be byte-identical to what port/dumps.py
(numpy) writes, and `verify.py compare` must accept it. Skipped, with the reason, where
a toolchain is missing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from port.dumps import write_text_array

REPO = Path(__file__).resolve().parent.parent
WRITERS = REPO / "writers"
DRIVERS = Path(__file__).parent / "writers"
LANGUAGES = ("cpp", "rust", "js")
TOOL = {"cpp": "g++", "rust": "rustc", "js": "node"}
# the text round trip on these stages (02 and 06's crops are slices of 01: same values, 10x the size)
TEXT_STAGES = ("01-audio", "03-segmentation", "04-multilabel", "05-count", "08-embeddings", "09-filter",
               "10-linkage", "11-fcluster", "12-assign", "13-reconstruct", "14-annotation")


def _run(command, **kwargs):
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)


def verify(*args):
    return _run([sys.executable, REPO / "verify.py", *args], cwd=REPO)


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """build(language) -> the command that runs that language's driver (compiled once)."""
    out = tmp_path_factory.mktemp("writers")
    built: dict[str, list] = {}

    def get(language: str) -> list:
        if shutil.which(TOOL[language]) is None:
            pytest.skip(f"{TOOL[language]} not installed: the {language} writer is not tested here")
        if language not in built:
            if language == "cpp":
                binary = out / "copy_dump_cpp"
                made = _run(["g++", "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", f"-I{WRITERS}",
                             DRIVERS / "copy_dump.cpp", "-o", binary])
                built[language] = [binary]
            elif language == "rust":
                binary = out / "copy_dump_rs"
                made = _run(["rustc", "--edition", "2021", "-C", "opt-level=2", "-D", "warnings",
                             DRIVERS / "copy_dump.rs", "-o", binary])
                built[language] = [binary]
            else:
                made = _run(["node", "--check", WRITERS / "pyannote_dump.js"])
                built[language] = ["node", DRIVERS / "copy_dump.js"]
            assert made.returncode == 0, made.stderr
        return built[language]

    return get


@pytest.fixture(scope="module")
def reference(dumps) -> Path:
    """pyannote's dump of test_16k (npy), shared with the other tests of the session."""
    return dumps("test_16k")["reference"]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_header_and_the_rust_module_compile_alone(tmp_path):
    if shutil.which("g++") is None or shutil.which("rustc") is None:
        pytest.skip("g++ or rustc not installed")
    cpp = _run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", f"-I{WRITERS}", "-x", "c++", "-"],
               input='#include "pyannote_dump.hpp"\nint main() { return 0; }\n')
    assert cpp.returncode == 0, cpp.stderr
    rust = _run(["rustc", "--edition", "2021", "--crate-type", "lib", "-D", "warnings",
                 WRITERS / "pyannote_dump.rs", "--out-dir", tmp_path])
    assert rust.returncode == 0, rust.stderr


@pytest.mark.parametrize("language", LANGUAGES)
def test_npy_dump_is_byte_identical_and_compare_accepts_it(language, build, reference, tmp_path):
    made = _run([*build(language), reference, tmp_path, language, "npy"])
    assert made.returncode == 0, made.stderr
    candidate = tmp_path / language / reference.name
    ours, theirs = _files(candidate), _files(reference)
    manifest = json.loads(ours.pop("manifest.json"))
    theirs.pop("manifest.json")
    assert sorted(ours) == sorted(theirs)
    differ = [name for name in theirs if ours[name] != theirs[name]]
    assert not differ, f"{language} wrote other bytes than numpy for {differ[:5]}"
    reference_manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["audio_sha256"] == reference_manifest["audio_sha256"]
    assert (manifest["side"], manifest["recording"], manifest["format"]) == (language, reference.name, 1)
    assert [p.name for p in (tmp_path / language).iterdir()] == [reference.name]  # no partial folder left
    result = verify("compare", reference, candidate)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def text_pair(reference, tmp_path_factory) -> tuple[Path, Path]:
    """A part of the reference's dump as npy, and the same written as text by port/dumps.py."""
    root = tmp_path_factory.mktemp("text")
    npy, txt = root / "npy" / reference.name, root / "txt" / reference.name
    for stage in TEXT_STAGES:
        for file in (reference / stage).iterdir():
            for target in (npy, txt):
                (target / stage).mkdir(parents=True, exist_ok=True)
            if file.suffix == ".npy":
                shutil.copy(file, npy / stage / file.name)
                write_text_array(txt / stage / f"{file.stem}.txt", np.load(file))
            else:
                shutil.copy(file, npy / stage / file.name)
                shutil.copy(file, txt / stage / file.name)
    for target in (npy, txt):
        shutil.copy(reference / "manifest.json", target / "manifest.json")
    return npy, txt


@pytest.mark.parametrize("language", LANGUAGES)
def test_text_dumps_match_python_both_ways(language, build, text_pair, tmp_path):
    npy, txt = text_pair
    # writer: npy in, text out == port.dumps.write_text_array's bytes (16-bit samples such as
    # 6.103515625e-05 are exact ties at 9 digits: every writer must round them to even)
    made = _run([*build(language), npy, tmp_path / "w", language, "txt"])
    assert made.returncode == 0, made.stderr
    ours, theirs = _files(tmp_path / "w" / language / npy.name), _files(txt)
    ours.pop("manifest.json"), theirs.pop("manifest.json")
    assert sorted(ours) == sorted(theirs)
    assert [n for n in theirs if ours[n] != theirs[n]] == []
    # reader: text in, npy out == numpy's bytes (float32 '%.9g' and float64 '%.17g' round-trip)
    made = _run([*build(language), txt, tmp_path / "r", language, "npy"])
    assert made.returncode == 0, made.stderr
    ours, theirs = _files(tmp_path / "r" / language / txt.name), _files(npy)
    ours.pop("manifest.json"), theirs.pop("manifest.json")
    assert [n for n in theirs if ours.get(n) != theirs[n]] == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_uncommitted_dump_leaves_the_previous_one_and_nothing_partial(language, build, text_pair, tmp_path):
    npy, _ = text_pair
    assert _run([*build(language), npy, tmp_path, language, "npy"]).returncode == 0
    before = _files(tmp_path / language)
    failed = _run([*build(language), npy, tmp_path, language, "txt", "abort"])
    assert failed.returncode == 1 and "aborted on purpose" in failed.stderr
    assert _files(tmp_path / language) == before  # no hidden .partial folder, old dump intact


@pytest.mark.parametrize("language", LANGUAGES)
def test_sha256_of_the_audio(language, build):
    audio = REPO / "tests" / "data" / "test_16k.wav"
    result = _run([*build(language), "sha256", audio])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == hashlib.sha256(audio.read_bytes()).hexdigest()


def test_cpp_example_port_of_stages_04_05(reference, tmp_path):
    """examples/cpp: built, run on pyannote's inputs, checked by `verify.py compare --stages 04-05`."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not installed: the C++ example is not built here")
    binary = tmp_path / "stages_04_05"
    made = _run(["g++", "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{WRITERS}",
                 REPO / "examples" / "cpp" / "stages_04_05.cpp", "-o", binary])
    assert made.returncode == 0, made.stderr
    ran = _run([binary, reference, tmp_path / "cpp"])
    assert ran.returncode == 0, ran.stderr
    candidate = tmp_path / "cpp" / reference.name
    # discrete stages: identical, value for value
    for stage, name in (("04-multilabel", "out_multilabel"), ("05-count", "out_count"), ("05-count", "out_frames")):
        ours, theirs = np.load(candidate / stage / f"{name}.npy"), np.load(reference / stage / f"{name}.npy")
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), f"{stage}/{name}"
    passed = verify("compare", reference, candidate, "--stages", "04-05")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    partial = verify("compare", reference, candidate)
    assert partial.returncode == 1 and "not implemented" in partial.stdout, partial.stdout + partial.stderr
