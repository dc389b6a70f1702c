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


def test_verify_run_with_the_pretrained_segmentation_on_an_ami_excerpt(tmp_path):
    _verify_pretrained("ami_trn03.wav", tmp_path)


@pytest.mark.slow
def test_verify_run_with_the_pretrained_segmentation_on_four_speakers_in_overlap(tmp_path):
    _verify_pretrained("ami_trn08.wav", tmp_path)
