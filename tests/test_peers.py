"""speakrs as a peer: this project's models converted into the folder speakrs' CPU mode loads
(checked tensor by tensor, and loaded by speakrs' own loaders), and one speakrs run judged
against pyannote (slow). benchmarks/peers.py times it; no timing here."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO / "benchmarks"))  # speakrs_models, peers (appended: shadows nothing)

if not (platform.system() == "Linux" and platform.machine() == "x86_64"):
    pytest.skip("speakrs 0.7.0 has one wheel, for Linux x86_64; this platform has none", allow_module_level=True)
speakrs = pytest.importorskip("speakrs", reason="speakrs is not installed (pip install -e '.[peers]')")
pytest.importorskip("safetensors", reason="safetensors is not installed (pip install -e '.[peers]')")

import speakrs_models  # noqa: E402  (benchmarks/, after the skips)

from port.pipeline import PLDA_DIR  # noqa: E402


@pytest.fixture(scope="module")
def min_samples(onnx_folder) -> int:
    """pyannote's min_num_samples of the fixture embedding, as the export stored it (its probe takes seconds)."""
    return speakrs_models.exported_min_num_samples(onnx_folder)


@pytest.fixture(scope="module")
def converted(torch_models, min_samples, tmp_path_factory) -> Path:
    segmentation, embedding = torch_models
    return speakrs_models.convert(segmentation, embedding, PLDA_DIR, tmp_path_factory.mktemp("speakrs") / "models",
                                  min_samples)


def test_conversion_is_what_speakrs_loads(torch_models, converted, min_samples):
    """Every file speakrs' CPU mode asks for, each tensor proven (names, shapes, LSTM gates in
    ONNX's order against torch's own LSTM, folded BatchNorm against torch's, PLDA exact), and
    speakrs' own loaders accept the folder."""
    segmentation, embedding = torch_models
    assert sorted(p.name for p in converted.iterdir()) == sorted(speakrs.required_model_files("CPU"))
    report = speakrs_models.check_conversion(segmentation, embedding, converted, PLDA_DIR, min_samples=min_samples)
    assert report["segmentation_tensors"] == 35 and report["embedding_tensors"] == 74
    assert report["lstm_max_error"] < 1e-10 and report["folded_conv_max_relative_error"] < 1e-5
    prepared = speakrs.prepare("CPU", model_dir=converted)
    speakrs.Pipeline.from_prepared(prepared, pipeline_config=speakrs.PipelineConfig(reconstruct_method="standard"))


def test_conversion_check_sees_swapped_gates_and_an_unfolded_norm(torch_models, converted, min_samples, tmp_path):
    """The proof fails on the two mistakes a converter makes: torch's i-f-g-o gate order left
    as it is, and a convolution written without its BatchNorm."""
    from safetensors.numpy import load_file, save_file

    segmentation, embedding = torch_models
    broken = tmp_path / "gates"
    shutil.copytree(converted, broken)
    tensors = load_file(str(broken / speakrs_models.SEGMENTATION_FILE))
    name = speakrs_models.lstm_names()[1][1]  # layer 0's W
    w = tensors[name]
    hidden = w.shape[1] // 4
    tensors[name] = np.ascontiguousarray(np.concatenate([w[:, :hidden], w[:, 2 * hidden:3 * hidden],
                                                         w[:, hidden:2 * hidden], w[:, 3 * hidden:]], axis=1))
    save_file(tensors, str(broken / speakrs_models.SEGMENTATION_FILE))
    with pytest.raises(speakrs_models.ConversionError, match="LSTM layer 0"):
        speakrs_models.check_conversion(segmentation, embedding, broken, PLDA_DIR, min_samples=min_samples)

    unfolded = tmp_path / "unfolded"
    shutil.copytree(converted, unfolded)
    tensors = load_file(str(unfolded / speakrs_models.EMBEDDING_FILE))
    state = embedding.state_dict()
    tensors["resnet.layer3.0.conv2.weight"] = state["resnet.layer3.0.conv2.weight"].numpy().copy()
    save_file(tensors, str(unfolded / speakrs_models.EMBEDDING_FILE))
    with pytest.raises(speakrs_models.ConversionError, match="layer3.0.conv2"):
        speakrs_models.check_conversion(segmentation, embedding, unfolded, PLDA_DIR, min_samples=min_samples)


def test_speakrs_refuses_a_folder_with_a_tensor_missing(converted, tmp_path):
    """speakrs' own loader is strict: one embedding tensor less and the folder does not load."""
    from safetensors.numpy import load_file, save_file

    broken = tmp_path / "missing"
    shutil.copytree(converted, broken)
    tensors = load_file(str(broken / speakrs_models.EMBEDDING_FILE))
    del tensors["resnet.layer4.2.conv1.weight_bias"]
    save_file(tensors, str(broken / speakrs_models.EMBEDDING_FILE))
    with pytest.raises(speakrs.SpeakrsError):
        speakrs.Pipeline.from_prepared(speakrs.prepare("CPU", model_dir=broken))


def test_peers_bad_input_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "peers.py"), str(tmp_path / "absent.wav")],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "absent.wav" in result.stderr
    assert not list((REPO / "benchmarks" / "results").glob("peers-*.tmp"))


@pytest.mark.slow  # a pyannote run (the reference dump) and speakrs twice: about a minute on 2 cores
def test_speakrs_run_judged_against_pyannote(torch_models, converted, tmp_path):
    """speakrs on a 5 s two-channel AMI excerpt with pyannote's reconstruction: its RTTM,
    judged on pyannote's frame grid against pyannote's own dump, passes."""
    import peers
    from reference.run import build_pipeline

    audio = REPO / "tests" / "data" / "ami_stereo_5s.wav"
    segmentation, embedding = torch_models
    from reference import models

    shas = {"segmentation": models.checksum(segmentation), "embedding": models.checksum(embedding)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dump = peers.reference_dump(tmp_path / "dumps", "ami_stereo_5s", audio, build_pipeline(segmentation, embedding),
                                    shas, None)
    pipeline = speakrs.Pipeline.from_prepared(speakrs.prepare("CPU", model_dir=converted))
    for method in ("standard", "smoothed"):
        result = pipeline.diarize_file(audio, pipeline_config=speakrs.PipelineConfig(reconstruct_method=method))
        rttm = tmp_path / f"speakrs-{method}.rttm"
        rttm.write_text(result.rttm())
        verdict = peers.judge(dump, rttm)
        assert verdict["status"] in ("identical", "tie order"), (method, verdict)
    moved = tmp_path / "moved.rttm"  # the judge sees a turn moved by 0.1 s
    lines = rttm.read_text().splitlines()
    fields = lines[0].split()
    fields[3] = f"{float(fields[3]) + 0.1:.6f}"
    moved.write_text("\n".join([" ".join(fields)] + lines[1:]) + "\n")
    assert peers.judge(dump, moved)["status"] == "differs"
