"""The per-layer precision audit (reference/audit.py, benchmarks/audit.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnx")
REPO = Path(__file__).resolve().parent.parent
STEREO = REPO / "tests" / "data" / "ami_stereo_5s.wav"


@pytest.fixture(scope="module")
def chunk():
    from port import audio
    from reference import audit

    waveform, rate = audio.load(STEREO)
    waveform, _ = audio.downmix_and_resample(waveform, rate, 16000)
    return audit.chunks_of(waveform[0], 16000, 160000, 1)


def test_audit_names_wav_norm1d_in_the_float32_instance_norm_graph(torch_models, onnx_folder, chunk, tmp_path):
    """Exporter v1's graph (float32 InstanceNormalization) fails first at wav_norm1d; the
    export (float64 reductions) is as exact as torch there and at the output."""
    from benchmarks.mutations import float32_instance_norms
    from reference import audit

    old = tmp_path / "v1-like.onnx"
    old.write_bytes(float32_instance_norms(onnx_folder / "segmentation.onnx"))
    before = audit.audit_segmentation(torch_models[0], old, chunk)
    first = audit.first_over(before)
    assert first is not None and first.layer == "sincnet.wav_norm1d", [(l.layer, l.ratio) for l in before]
    assert first.ratio > 10

    after = {l.layer: l for l in audit.audit_segmentation(torch_models[0], onnx_folder / "segmentation.onnx", chunk)}
    assert after["sincnet.wav_norm1d"].ratio <= 2 and after["<output>"].ratio <= 2
    assert all(after[f"sincnet.norm1d.{k}"].ratio <= 2 for k in range(3))


def test_audit_names_the_lstm_in_onnx_runtimes_lstm_op(torch_models, onnx_lstm_segmentation, chunk):
    """Exporter v2's graph (ONNX Runtime's LSTM op, MLAS activations): on ami_stereo_5s
    the first layer over 2 is the LSTM (2.6x measured)."""
    from reference import audit

    first = audit.first_over(audit.audit_segmentation(torch_models[0], onnx_lstm_segmentation, chunk))
    assert first is not None and first.layer == "lstm", first


@pytest.mark.parametrize("recording", ["ami_stereo_5s.wav", pytest.param("sample.wav", marks=pytest.mark.slow)])
def test_no_segmentation_layer_over_2(torch_models, onnx_folder, recording):
    """The default export (exact_lstms: the LSTM's activations and cell in float64): no
    layer of the segmentation graph is over 2x torch's float32 error, on up to 2 chunks."""
    from port import audio
    from reference import audit

    waveform, rate = audio.load(REPO / "tests" / "data" / recording)
    waveform, _ = audio.downmix_and_resample(waveform, rate, 16000)
    chunks = audit.chunks_of(waveform[0], 16000, 160000, 2)
    layers = audit.audit_segmentation(torch_models[0], onnx_folder / "segmentation.onnx", chunks)
    assert audit.first_over(layers) is None, [(l.layer, round(l.ratio, 2), round(l.ratio_p99, 2)) for l in layers]
    assert {l.layer for l in layers} >= {"lstm", "linear.0", "linear.1", "<output>"}


def test_audit_cli_bad_input_is_one_line_exit_2(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "audit.py"), str(tmp_path / "missing.wav")],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "not found" in result.stderr
