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
