"""ONNX vs PyTorch on real speech, under the stage bounds of pyproject.toml."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from port import runtime
from harness.compare import export_bounds

from .conftest import RECORDINGS


def _chunks(path, num_samples=160000):
    import torch
    import torchaudio

    waveform, rate = sf.read(path, dtype="float32")
    if rate != 16000:
        waveform = torchaudio.functional.resample(torch.from_numpy(waveform), rate, 16000).numpy()
    starts = list(range(0, max(1, len(waveform) - num_samples), 3 * 16000)) + [max(0, len(waveform) - num_samples // 3)]
    chunks = np.zeros((len(starts), 1, num_samples), dtype=np.float32)
    for i, s in enumerate(starts):
        piece = waveform[s : s + num_samples]
        chunks[i, 0, : len(piece)] = piece
    return chunks


# torch on every chunk of a recording: test_16k in the default set, the longer two slow
EXPORT_RECORDINGS = [pytest.param(r, marks=() if r == "test_16k" else pytest.mark.slow) for r in sorted(RECORDINGS)]


@pytest.mark.parametrize("recording", EXPORT_RECORDINGS)
def test_segmentation_onnx_matches_torch(torch_models, onnx_folder, recording):
    import torch

    chunks = _chunks(RECORDINGS[recording])
    with torch.inference_mode():
        expected = torch_models[0](torch.from_numpy(chunks)).numpy()
    session = runtime.session(onnx_folder / "segmentation.onnx", device="cpu")
    got = session.run(None, {"waveform": chunks})[0]
    assert np.max(np.abs(got - expected)) <= export_bounds()["segmentation_atol"]


def test_default_segmentation_has_the_exact_lstm_in_standard_ops(torch_models, onnx_folder, onnx_lstm_segmentation):
    """exact_lstms (the default export): no LSTM node left, one Scan per layer whose
    activations and cell are float64, standard opset only, the export gate holds; with
    exact_lstm=False the LSTM op stays and the metadata says so."""
    import json

    import onnx
    import torch
    from onnx import TensorProto

    proto = onnx.load(str(onnx_folder / "segmentation.onnx"))
    ops = [node.op_type for node in proto.graph.node]
    assert "LSTM" not in ops and ops.count("Scan") == torch_models[0].lstm.num_layers
    assert {opset.domain for opset in proto.opset_import} <= {"", "ai.onnx"}
    for scan in (node for node in proto.graph.node if node.op_type == "Scan"):
        body = next(a.g for a in scan.attribute if a.name == "body")
        tanh_inputs = {n.input[0] for n in body.node if n.op_type == "Tanh"}
        casts = {n.output[0]: n for n in body.node if n.op_type == "Cast"}
        assert len(tanh_inputs) == 2 and any(c.attribute[0].i == TensorProto.DOUBLE for c in casts.values())
        assert {i.name: i.type.tensor_type.elem_type for i in body.input}["c"] == TensorProto.DOUBLE
    meta = json.loads(next(e.value for e in proto.metadata_props if e.key == "pyannote_port"))
    assert meta["exact_lstm"] is True
    chunks = _chunks(RECORDINGS[sorted(RECORDINGS)[0]])[:2]
    with torch.inference_mode():
        expected = torch_models[0](torch.from_numpy(chunks)).numpy()
    for path in (onnx_folder / "segmentation.onnx", onnx_lstm_segmentation):
        got = runtime.session(path, device="cpu").run(None, {"waveform": chunks})[0]
        assert np.max(np.abs(got - expected)) <= export_bounds()["segmentation_atol"], path
    plain = onnx.load(str(onnx_lstm_segmentation))
    assert [n.op_type for n in plain.graph.node].count("LSTM") == torch_models[0].lstm.num_layers
    assert json.loads(next(e.value for e in plain.metadata_props if e.key == "pyannote_port"))["exact_lstm"] is False


@pytest.mark.parametrize("recording", EXPORT_RECORDINGS)
def test_embedding_onnx_matches_torch(torch_models, onnx_folder, recording):
    """Single graph and trunk/head split, against pyannote's model forward with weights."""
    import torch

    from port.embedding import Embedding

    embedding = torch_models[1]
    chunks = _chunks(RECORDINGS[recording])
    rng = np.random.default_rng(0)
    weights = (rng.random((len(chunks), 3, 589)) > 0.3).astype(np.float32)
    weights[0, 2] = 0.0
    with torch.inference_mode():
        fbank = embedding.compute_fbank(torch.from_numpy(chunks)).clone()
        expected = np.stack([
            embedding(torch.from_numpy(chunks), weights=torch.from_numpy(weights[:, s])).numpy() for s in range(3)
        ], axis=1)
    bound = export_bounds()["embedding_atol"]
    for split in (True, False):
        model = Embedding(onnx_folder, device="cpu", split=split)
        got = model(fbank.numpy(), weights)
        assert np.max(np.abs(got - expected)) <= bound, f"split={split}"


def test_trunk_head_split_equals_single_graph(onnx_folder):
    from port.embedding import Embedding

    rng = np.random.default_rng(1)
    fbank = rng.standard_normal((4, 998, 80)).astype(np.float32)
    weights = (rng.random((4, 3, 589)) > 0.5).astype(np.float32)
    weights[1] = 0.0
    split = Embedding(onnx_folder, device="cpu", split=True)
    single = Embedding(onnx_folder, device="cpu", split=False)
    np.testing.assert_allclose(split(fbank, weights), single(fbank, weights), atol=1e-5, rtol=0)
    # an all-zero mask gives what the head gives for zero weights, whatever the audio
    np.testing.assert_array_equal(split(fbank, weights)[1, 0], split.zero_mask_embedding(589))


def test_onnx_metadata_describes_the_model(onnx_folder, torch_models):
    from reference.models import checksum

    segmentation = runtime.metadata(runtime.session(onnx_folder / "segmentation.onnx", device="cpu"))
    assert segmentation["num_frames"] == 589 and segmentation["num_samples"] == 160000
    assert segmentation["mapping"][4] == [1, 1, 0] and segmentation["source_sha256"] == checksum(torch_models[0])
    embedding = runtime.metadata(runtime.session(onnx_folder / "embedding-head.onnx", device="cpu"))
    assert embedding["fbank"]["window_type"] == "hamming" and embedding["dimension"] == 256
    assert embedding["min_num_samples"] > 0


def test_corrupt_onnx_is_one_line(tmp_path):
    bad = tmp_path / "segmentation.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(runtime.ModelError) as error:
        runtime.session(bad, device="cpu")
    assert "cannot load ONNX model" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(runtime.ModelError, match="not found"):
        runtime.session(tmp_path / "missing.onnx")
