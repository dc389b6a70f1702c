"""Bad and unusual input, one row each: a one-line error and exit 2 where the input is
unusable, the same diarization as pyannote where it is merely unusual."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from port import audio
from harness.compare import compare_trees, first_failure

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "tests" / "data" / "sample.wav"


def port_cli(*args, models=None):
    command = [sys.executable, "-m", "port", *map(str, args), "--quiet"]
    if models is not None:
        command += ["--models", str(models)]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO)


def one_line_error(result) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-500:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    (root / "empty.wav").write_bytes(b"")
    (root / "bytes.wav").write_bytes(os.urandom(4096))
    sf.write(root / "zero.wav", np.zeros((0,), dtype=np.float32), 16000)
    nan = np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.1
    nan[1000] = np.nan
    sf.write(root / "nan.wav", nan, 16000, subtype="FLOAT")
    inf = nan.copy()
    inf[1000] = np.inf
    sf.write(root / "inf.wav", inf, 16000, subtype="FLOAT")
    (root / "folder.wav").mkdir()
    return root


@pytest.mark.parametrize(
    "name, words",
    [
        ("missing.wav", "not found"),
        ("folder.wav", "directory"),
        ("bytes.wav", "not"),
        ("empty.wav", "empty"),
        ("zero.wav", "no audio samples"),
        ("nan.wav", "NaN"),
        ("inf.wav", "inf"),
    ],
)
def test_unusable_audio_is_one_line(bad_files, onnx_folder, name, words):
    line = one_line_error(port_cli(bad_files / name, models=onnx_folder))
    assert words.lower() in line.lower(), line
    with pytest.raises(audio.AudioError):
        audio.load(bad_files / name)


def test_missing_corrupt_and_mismatched_models_are_one_line(tmp_path, onnx_folder):
    assert "no segmentation.onnx" in one_line_error(port_cli(SAMPLE, models=tmp_path))
    (tmp_path / "segmentation.onnx").write_bytes(b"corrupt")
    assert "cannot load ONNX model" in one_line_error(port_cli(SAMPLE, models=tmp_path))
    # an embedding graph where the segmentation should be
    mismatched = tmp_path / "mismatched"
    mismatched.mkdir()
    for file in onnx_folder.glob("*.onnx"):
        (mismatched / file.name).symlink_to(file)
    (mismatched / "segmentation.onnx").unlink()
    (mismatched / "segmentation.onnx").symlink_to(onnx_folder / "embedding-head.onnx")
    assert "not a segmentation model" in one_line_error(port_cli(SAMPLE, models=mismatched))


def _write(path: Path, waveform: np.ndarray, rate: int) -> Path:
    sf.write(path, waveform, rate, subtype="PCM_16")
    return path


def _sample_at(rate: int) -> np.ndarray:
    waveform, _ = audio.load(SAMPLE)
    return audio.resample(waveform, 16000, rate)[0]


@pytest.fixture(scope="module")
def unusual_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("unusual")
    rng = np.random.default_rng(0)
    mono8k = _sample_at(8000)
    right = np.roll(mono8k, 400) * 0.5
    stereo44 = _sample_at(44100)
    return {
        "silence": _write(root / "silence.wav", np.zeros(16000 * 12, dtype=np.float32), 16000),
        "short": _write(root / "short.wav", audio.load(SAMPLE)[0][0, 16000 * 9 : 16000 * 13], 16000),
        "stereo8k": _write(root / "stereo8k.wav", np.stack([mono8k, right], axis=1), 8000),
        "stereo44k": _write(root / "stereo44k.wav", np.stack([stereo44, stereo44 * 0.3 + rng.standard_normal(len(stereo44)).astype(np.float32) * 1e-3], axis=1), 44100),
    }


# the two stereo files are full-length recordings (resampled, two pyannote+port runs): slow
@pytest.mark.parametrize("name", ["silence", "short", pytest.param("stereo8k", marks=pytest.mark.slow),
                                  pytest.param("stereo44k", marks=pytest.mark.slow)])
def test_unusual_audio_is_diarized_like_pyannote(dumps, unusual_files, name):
    made = dumps(unusual_files[name])
    rows = compare_trees(made["reference"], made["port"], chain=True)
    failed = [f"{r.stage}/{r.name}: {r.note}" for r in rows if not r.passed]
    assert not failed, f"first stage over tolerance: {first_failure(rows)}; {failed[:4]}"
    assert made["port_result"].rttm == made["reference_result"].rttm
    if name == "silence":
        assert made["port_result"].rttm == "" and made["port_result"].num_speakers == 0
    else:
        assert made["port_result"].turns


def test_silence_through_the_cli_is_an_empty_rttm(unusual_files, onnx_folder, tmp_path):
    result = port_cli(unusual_files["silence"], "--rttm", tmp_path / "out.rttm", models=onnx_folder)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.rttm").read_text() == ""


def test_ctrl_c_leaves_no_partial_dump(tmp_path):
    """SIGINT in the middle of `verify.py run`: exit 130, one line, no partial dump."""
    dumps = tmp_path / "dumps"
    process = subprocess.Popen(
        [sys.executable, str(REPO / "verify.py"), "run", str(SAMPLE), "--dumps", str(dumps)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # wait for pyannote's dump to be under way (model loading can take minutes on a busy machine)
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None and not list((dumps / "reference").glob(".*partial*")):
        time.sleep(0.2)
    assert process.poll() is None, "verify.py run ended before its reference dump was under way"
    assert list((dumps / "reference").glob(".*partial*")), "no partial reference dump after 600 s"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-500:]
    assert "interrupted" in stderr and "Traceback" not in stderr
    leftovers = [p for p in dumps.rglob("*") if "partial" in p.name]
    assert not leftovers
    assert not (dumps / "reference" / "sample").exists()
