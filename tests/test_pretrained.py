"""pyannote's pretrained segmentation-3.0 rebuilt from its int8 ONNX: the mapping is
proven by quantizing the rebuilt float checkpoint again with the same recipe."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")


def _quantized_by_node(path):
    """Every quantized weight (with its scale and zero point) of each quantized node, in graph order."""
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    found = []
    for node in graph.node:
        if node.op_type in ("DynamicQuantizeLSTM", "MatMulInteger", "ConvInteger"):
            tensors = [values[name] for name in node.input if name in values and values[name].dtype.kind in "iu"
                       or name.endswith("_scale") and name in values]
            found.append((node.op_type, tensors))
    return found


def test_requantizing_the_rebuilt_checkpoint_gives_every_int8_tensor_back(tmp_path):
    from reference import pretrained

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = pretrained.segmentation_from_int8()
        requantized = pretrained.export_int8_like(model, tmp_path / "requantized.onnx")
    original, again = _quantized_by_node(pretrained.SEGMENTATION_INT8), _quantized_by_node(requantized)
    assert [op for op, _ in original] == [op for op, _ in again]
    assert sum(op == "DynamicQuantizeLSTM" for op, _ in original) == 4
    compared = 0
    for (op, a), (_, b) in zip(original, again):
        assert len(a) == len(b) and a, op
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y, err_msg=op)
            compared += x.size
    assert compared > 1_400_000  # every weight of the model, not a sample


def test_int8_file_is_recognised_and_others_are_not(tmp_path):
    from reference import pretrained

    assert pretrained.is_int8_segmentation(pretrained.SEGMENTATION_INT8)
    (tmp_path / "x.onnx").write_bytes(b"not onnx")
    assert not pretrained.is_int8_segmentation(tmp_path / "x.onnx")


def _verify_pretrained(recording, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from reference import pretrained

    repo = Path(__file__).resolve().parent.parent
    report = tmp_path / "R.json"
    result = subprocess.run(
        [sys.executable, str(repo / "verify.py"), "run", str(repo / "tests" / "data" / recording),
         "--segmentation", str(pretrained.SEGMENTATION_INT8), "--dumps", str(tmp_path / "dumps"), "--json", str(report)],
        capture_output=True, text=True, cwd=repo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    entry = json.loads(report.read_text())["recordings"][0]
    assert entry["passed"] and entry["rttm"]["identical"]
    assert entry["der"]["reference"] is not None and entry["der"]["port"] is not None
    out = " ".join(result.stdout.split())
    assert "segmentation pyannote/segmentation-3.0 pretrained" in out and "embedding fixture" in out
    assert out.count("DER ") >= 2  # both sides scored against the AMI RTTM
    return entry


@pytest.mark.slow  # a full verify.py run in a subprocess (pyannote, the port, the noise)
def test_verify_run_with_the_pretrained_segmentation_on_an_ami_excerpt(tmp_path):
    _verify_pretrained("ami_trn03.wav", tmp_path)


@pytest.mark.slow
def test_verify_run_with_the_pretrained_segmentation_on_four_speakers_in_overlap(tmp_path):
    _verify_pretrained("ami_trn08.wav", tmp_path)


# ----------------------------------------------------------------------------- the exact float model
def _rebuild_errors(state: dict) -> dict:
    """How far a rebuilt PyanNet is from the float graph it came from: SincNet's
    filterbank against the graph's materialised constant (and float32's own rounding of
    that filterbank, torch float32 vs float64), and the log-probabilities on the export
    check chunks (pyannote's sample, a zero-padded tail) against ONNX Runtime's."""
    import copy

    import onnxruntime
    import torch
    from onnx import numpy_helper

    from reference import export, pretrained

    model = pretrained._into_pyannet(state, "rebuilt")
    filters32 = pretrained.filterbank(model)
    filters64 = pretrained.filterbank(copy.deepcopy(model).double())
    graph = onnx.load(str(pretrained.SEGMENTATION_FLOAT)).graph
    constant = next(numpy_helper.to_array(i) for i in graph.initializer if i.name == pretrained.FILTERBANK)
    chunks = export._check_chunks(160000, 16000)[[0, 3]]  # speech, and the zero-padded tail
    with torch.no_grad():
        torch_out = model(torch.from_numpy(chunks)).numpy()
    session = onnxruntime.InferenceSession(str(pretrained.SEGMENTATION_FLOAT), providers=["CPUExecutionProvider"])
    graph_out = session.run(None, {"input": chunks})[0]
    return {
        "filterbank": float(np.max(np.abs(constant - filters64))),
        "filterbank_float32": float(np.max(np.abs(filters32 - filters64))),
        "output": float(np.max(np.abs(torch_out - graph_out))),
    }


def _rebuild_holds(errors: dict) -> bool:
    from harness.compare import export_bounds

    ulp = float(np.finfo(np.float32).eps)  # filters peak at 1.0
    return (errors["filterbank"] <= 2 * errors["filterbank_float32"] + 4 * ulp
            and errors["output"] <= export_bounds()["segmentation_atol"])


@pytest.fixture(scope="module")
def float_state():
    from reference import pretrained

    return pretrained.state_dict_from_float()


def test_exact_pretrained_rebuild_is_the_float_graph(float_state):
    """SincNet from the int8 file's band edges, everything else from the float graph:
    the filterbank equals the float graph's constant within float32 rounding, and the
    torch model's output equals the float graph's within the export gate."""
    errors = _rebuild_errors(float_state)
    assert _rebuild_holds(errors), errors


@pytest.mark.parametrize("name", [
    "lstm.weight_hh_l2_reverse",  # the default loop keeps one; the others are the slow set's (each reruns the model)
    *(pytest.param(n, marks=pytest.mark.slow) for n in (
        "sincnet.conv1d.0.filterbank.low_hz_", "sincnet.wav_norm1d.weight", "lstm.bias_ih_l0", "linear.1.weight",
        "classifier.bias")),
])
def test_exact_pretrained_rebuild_check_sees_one_perturbed_tensor(float_state, name):
    bad = dict(float_state)
    value = float_state[name].copy()
    value.reshape(-1)[: max(1, value.size // 8)] *= np.float32(1.02)
    bad[name] = value
    assert not _rebuild_holds(_rebuild_errors(bad)), f"perturbing {name} went unseen"


def test_pretrained_and_float_file_recognised():
    from reference import models, pretrained

    assert pretrained.sha256_file(pretrained.SEGMENTATION_FLOAT).startswith("b78fc48113bb")
    assert pretrained.is_float_segmentation(pretrained.SEGMENTATION_FLOAT)
    assert not pretrained.is_float_segmentation(pretrained.SEGMENTATION_INT8)
    assert not pretrained.is_int8_segmentation(pretrained.SEGMENTATION_FLOAT)
    assert models.source_sha256("segmentation", "pretrained").startswith("b78fc48113bb")
    assert "exact" in models.describe("segmentation", "pretrained")
