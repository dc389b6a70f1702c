"""WeSpeaker's fbank (`BaseWeSpeakerResNet.compute_fbank`) as an ONNX graph: ``fbank.onnx``.

    waveforms (B, C, samples) float32  ->  fbank (B, frames, mel) float32

the Kaldi fbank exactly as pyannote's WeSpeaker computes it
(``torchaudio.compliance.kaldi.fbank`` with the model's options), so that ONNX
Runtime runs it where the ResNet runs (CUDA or CPU) and the crops need not
visit the host. Steps, each an ONNX op (opset 17), in torchaudio's order:

* channel 0 (``kaldi.fbank(channel=-1)``), times 2**15;
* framing with ``snip_edges``: one Gather with a frame-index tensor computed in
  the graph from the input's length (``frames = 1 + (n - size) // shift``), so
  any chunk length works;
* DC removal per frame (ReduceMean), pre-emphasis with the first sample
  replicated (Kaldi's ``replicate`` pad), the window (the port's float32
  window, ``port/fbank.py``, as a constant);
* the power spectrum of the 512-point zero-padded FFT as a DFT matmul: the
  frame times cos / sin matrices (only the rows of real samples, and only the
  columns some mel filter uses), then ``re**2 + im**2``;
* the mel banks (``port/fbank.py: get_mel_banks``, a constant), the log with
  torchaudio's floor ``max(x, eps)``;
* the mean over time subtracted per chunk (``fbank_centering_span`` None).

Precision: ``precision="float64"`` (the default) casts the windowed frames to
float64 before the DFT and rounds once to float32 after the log, as the numpy
fbank does (``port/fbank.py`` explains why torch's float32 MKL FFT is not
reproducible: the exact value is the target that lands within pyannote's own
noise). ``precision="float32"`` keeps everything float32 (the DFT matmul then
carries an error like a float32 FFT's, somewhat larger: docs/precision.md gives the
measured drift of both against pyannote's noise).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from port import fbank as kaldi

OPSET = 17
GRAPH_VERSION = 1
PRECISIONS = ("float64", "float32")


class FbankGraphError(ValueError):
    """Options the graph does not implement; one line."""


def _options(hparams: dict) -> dict:
    hp = {**kaldi.WESPEAKER_HPARAMS, **{k: v for k, v in dict(hparams or {}).items() if k in kaldi.WESPEAKER_HPARAMS}}
    unsupported = []
    if not hp["snip_edges"]:
        unsupported.append("snip_edges=False")
    if hp["dither"] != 0.0:
        unsupported.append("dither")
    if hp["use_energy"]:
        unsupported.append("use_energy")
    if hp["fbank_centering_span"] is not None:
        unsupported.append("fbank_centering_span")
    if unsupported:
        raise FbankGraphError(f"fbank graph: {', '.join(unsupported)} not implemented (use the numpy fbank)")
    return hp


def constants(hparams: dict) -> dict:
    """The graph's numeric constants, from the port's own fbank (window, mel banks, DFT)."""
    hp = _options(hparams)
    rate = hp["sample_rate"]
    shift = int(rate * hp["frame_shift"] * 0.001)
    size = int(rate * hp["frame_length"] * 0.001)
    padded = kaldi._next_power_of_2(size) if hp["round_to_power_of_two"] else size
    mel = kaldi.get_mel_banks(hp["num_mel_bins"], padded, rate, 20.0, 0.0)  # kaldi.fbank's low/high defaults
    used = np.nonzero(mel.any(axis=0))[0]
    k0, k1 = int(used[0]), int(used[-1]) + 1
    n = np.arange(size, dtype=np.float64)[:, None]
    k = np.arange(k0, k1, dtype=np.float64)[None, :]
    # exact angles: (n k mod N) keeps the argument in [0, 2 pi) before cos / sin
    angle = 2.0 * math.pi * np.mod(n * k, padded) / padded
    return {
        "shift": shift, "size": size, "padded": padded, "k0": k0, "k1": k1,
        "window": kaldi._feature_window_function(hp["window_type"], size, 0.42),
        "cos": np.cos(angle), "sin": np.sin(angle),
        "mel": np.ascontiguousarray(mel[:, k0:k1].T.astype(np.float64)),  # (bins used, mel)
        "eps": float(np.finfo(np.float32).eps),
        "hparams": hp,
    }


def build(hparams: dict | None = None, precision: str = "float64", meta: dict | None = None):
    """The fbank ModelProto (onnx helper API)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if precision not in PRECISIONS:
        raise FbankGraphError(f"fbank graph precision must be one of {PRECISIONS}, not {precision!r}")
    c = constants(hparams or {})
    hp = c["hparams"]
    wide = precision == "float64"
    ftype = np.float64 if wide else np.float32
    fproto = TensorProto.DOUBLE if wide else TensorProto.FLOAT
    inits = []

    def const(name, value, dtype=None):
        array = np.asarray(value, dtype=dtype)
        inits.append(numpy_helper.from_array(array, name))
        return name

    nodes = []

    def node(op, inputs, output, **attrs):
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    const("channel0", np.array(0, dtype=np.int64))
    const("scale", np.float32(1 << 15))
    const("size", np.array([c["size"]], dtype=np.int64))
    const("shift", np.array([c["shift"]], dtype=np.int64))
    const("one", np.array([1], dtype=np.int64))
    const("zero_scalar", np.array(0, dtype=np.int64))
    const("shift_scalar", np.array(c["shift"], dtype=np.int64))
    const("offsets", np.arange(c["size"], dtype=np.int64)[None, :])  # (1, size)
    const("window", c["window"].astype(np.float32))
    const("preemph", np.float32(0.97))
    const("cos", c["cos"].astype(ftype))
    const("sin", c["sin"].astype(ftype))
    const("mel", c["mel"].astype(ftype))
    const("eps", np.asarray(c["eps"], dtype=ftype))
    const("axis_last", np.array([-1], dtype=np.int64))
    const("first", np.array([0], dtype=np.int64))
    const("second", np.array([1], dtype=np.int64))
    const("but_last", np.array([-1], dtype=np.int64))
    const("last_axis", np.array([2], dtype=np.int64))

    # channel 0, scaled as compute_fbank does
    node("Gather", ["waveforms", "channel0"], "mono", axis=1)  # (B, n)
    node("Mul", ["mono", "scale"], "scaled")
    # snip_edges framing: index[t, j] = t * shift + j for t < 1 + (n - size) // shift
    node("Shape", ["scaled"], "shape")
    node("Gather", ["shape", "one"], "num_samples", axis=0)  # [n]
    node("Sub", ["num_samples", "size"], "spare")
    node("Div", ["spare", "shift"], "spare_frames")  # integer division (n >= size)
    node("Add", ["spare_frames", "one"], "num_frames_1d")
    node("Squeeze", ["num_frames_1d"], "num_frames")
    const("one_scalar", np.array(1, dtype=np.int64))
    node("Range", ["zero_scalar", "num_frames", "one_scalar"], "frame_numbers")
    node("Mul", ["frame_numbers", "shift_scalar"], "frame_starts")
    node("Unsqueeze", ["frame_starts", "axis_last"], "frame_starts_col")  # (m, 1)
    node("Add", ["frame_starts_col", "offsets"], "index")  # (m, size)
    node("Gather", ["scaled", "index"], "frames", axis=1)  # (B, m, size)
    # DC offset per frame
    node("ReduceMean", ["frames"], "frame_mean", axes=[-1], keepdims=1)
    node("Sub", ["frames", "frame_mean"], "centred")
    # pre-emphasis: x[j] - 0.97 * x[j - 1], x[-1] := x[0]
    node("Slice", ["centred", "first", "second", "last_axis"], "head_sample")
    node("Slice", ["centred", "first", "but_last", "last_axis"], "body")
    node("Concat", ["head_sample", "body"], "previous", axis=2)
    node("Mul", ["previous", "preemph"], "previous_scaled")
    node("Sub", ["centred", "previous_scaled"], "emphasised")
    node("Mul", ["emphasised", "window"], "windowed")
    # power spectrum of the zero-padded frame, columns k0..k1 only
    source = node("Cast", ["windowed"], "windowed_wide", to=fproto) if wide else "windowed"
    node("MatMul", [source, "cos"], "real")
    node("MatMul", [source, "sin"], "imag")
    node("Mul", ["real", "real"], "real2")
    node("Mul", ["imag", "imag"], "imag2")
    node("Add", ["real2", "imag2"], "power")
    node("MatMul", ["power", "mel"], "energies")
    node("Max", ["energies", "eps"], "floored")
    logged = node("Log", ["floored"], "log_energies")
    if wide:
        logged = node("Cast", [logged], "log_energies32", to=TensorProto.FLOAT)
    # mean over time, per chunk
    node("ReduceMean", [logged], "time_mean", axes=[1], keepdims=1)
    node("Sub", [logged, "time_mean"], "fbank")

    graph = helper.make_graph(
        nodes, "wespeaker_fbank",
        [helper.make_tensor_value_info("waveforms", TensorProto.FLOAT, ["batch", "channels", "samples"])],
        [helper.make_tensor_value_info("fbank", TensorProto.FLOAT, ["batch", "frames", hp["num_mel_bins"]])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="pyannote-port")
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key = "pyannote_port"
    entry.value = json.dumps({**(meta or {}), **metadata(hp, precision)}, sort_keys=True)
    onnx.checker.check_model(model)
    return model


def metadata(hparams: dict, precision: str) -> dict:
    return {"kind": "fbank", "fbank_graph": GRAPH_VERSION, "precision": precision, "fbank": dict(hparams),
            "sample_rate": int(hparams["sample_rate"])}


def save(path: str | Path, hparams: dict | None = None, precision: str = "float64", meta: dict | None = None) -> Path:
    """Write ``fbank.onnx`` atomically."""
    import onnx

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(build(hparams, precision, meta), str(tmp))
    tmp.replace(path)
    return path
