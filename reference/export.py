"""PyTorch -> ONNX for the segmentation and embedding models, checked at export time.

Graphs (legacy TorchScript exporter, opset 17, dynamic batch):

* ``segmentation.onnx``     waveform (B, 1, samples) -> powerset log-probabilities (B, frames, classes)
* ``embedding.onnx``        fbank (B, fbank_frames, mel) + weights (B, frames) -> embedding (B, D),
                            pyannote's `WeSpeakerResNet34.resnet` whole (fbank stays outside)
* ``embedding-trunk.onnx``  fbank (B, fbank_frames, mel) -> frame features (B, C, F, T)
                            (`ResNet.forward_frames`: does not depend on the speaker mask)
* ``embedding-head.onnx``   frame features (B, C, F, T) + weights (B, S, frames) -> embeddings (B, S, D)
                            (`ResNet.forward_embedding` with a speaker dimension: statistics
                            pooling with nearest-interpolated weights, then seg_1)

Each model carries a ``pyannote_port`` JSON metadata entry with everything the port
needs (sample rate, chunk duration, receptive field, powerset mapping, fbank
parameters, min_num_samples, ...), so the port reads no torch object. Exports are
cached by the checksum of the weights they came from, and refused when ONNX Runtime
disagrees with PyTorch beyond the stage tolerances on real speech.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from harness.compare import export_bounds

from . import fbank_graph, models

# 2: InstanceNormalization rewritten as float64 reductions (exact_instance_norms)
# 3: the LSTM rewritten with float64 activations and cell (exact_lstms), by default
EXPORTER_VERSION = 3
OPSET = 17
REPO = Path(__file__).resolve().parent.parent
CHECK_AUDIO = REPO / "tests" / "data" / "sample.wav"


class ExportError(RuntimeError):
    """ONNX export failed or disagrees with PyTorch; one line."""


def _check_chunks(num_samples: int, sample_rate: int) -> np.ndarray:
    """Real speech for the export check: 10 s crops of pyannote's sample plus a
    zero-padded tail, as the pipeline produces them."""
    import soundfile as sf

    waveform, _ = sf.read(CHECK_AUDIO, dtype="float32")
    starts = [0, 5 * sample_rate, 12 * sample_rate, len(waveform) - num_samples // 2]
    chunks = np.zeros((len(starts), 1, num_samples), dtype=np.float32)
    for i, start in enumerate(starts):
        piece = waveform[start : start + num_samples]
        chunks[i, 0, : len(piece)] = piece
    return chunks


def _replace_nodes(graph, nodes) -> None:
    """The graph's nodes replaced by `nodes`; initializers no node reads any more dropped."""
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def exact_instance_norms(proto) -> int:
    """Rewrite every InstanceNormalization node into standard ops that reduce in float64.

    ONNX Runtime's InstanceNormalization (and a float32 ReduceMean two-pass alike)
    accumulates the mean and variance in float32: over the 160,000 samples of a chunk
    its result is 4.8e-4 from float64 where torch's is 7.7e-7 (measured by
    reference/audit.py; docs/precision.md), and SincNet carries that to the
    log-probabilities. Here the input is cast to double, mean and (two-pass) variance
    come from ReduceMean, the affine transform is applied in double, and the result is
    cast back to float32: Cast, ReduceMean, Sub, Mul, Add, Sqrt, Div (opset 17, every
    runtime has them in double). The nodes keep the original scope and output name.
    Returns how many nodes were rewritten."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    initializers = {init.name: init for init in graph.initializer}
    nodes, rewritten = [], 0
    for node in graph.node:
        if node.op_type != "InstanceNormalization":
            nodes.append(node)
            continue
        rewritten += 1
        scope = node.name.rsplit("/", 1)[0] + "/ExactNorm"
        x, scale, bias = node.input
        epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        epsilon = float(f"{epsilon:.7g}")  # the float32 attribute back to torch's 1e-5
        channels = int(np.prod(initializers[scale].dims))
        added = {
            f"{scope}/scale": numpy_helper.to_array(initializers[scale]).astype(np.float64).reshape(channels, 1),
            f"{scope}/bias": numpy_helper.to_array(initializers[bias]).astype(np.float64).reshape(channels, 1),
            f"{scope}/epsilon": np.array(epsilon, dtype=np.float64),
        }
        for name, value in added.items():
            graph.initializer.append(numpy_helper.from_array(value, name))
        t = lambda name: f"{scope}/{name}_output_0"  # noqa: E731
        nodes += [
            helper.make_node("Cast", [x], [t("Cast")], name=f"{scope}/Cast", to=TensorProto.DOUBLE),
            helper.make_node("ReduceMean", [t("Cast")], [t("Mean")], name=f"{scope}/Mean", axes=[2], keepdims=1),
            helper.make_node("Sub", [t("Cast"), t("Mean")], [t("Centred")], name=f"{scope}/Centred"),
            helper.make_node("Mul", [t("Centred"), t("Centred")], [t("Square")], name=f"{scope}/Square"),
            helper.make_node("ReduceMean", [t("Square")], [t("Variance")], name=f"{scope}/Variance", axes=[2], keepdims=1),
            helper.make_node("Add", [t("Variance"), f"{scope}/epsilon"], [t("AddEps")], name=f"{scope}/AddEps"),
            helper.make_node("Sqrt", [t("AddEps")], [t("Std")], name=f"{scope}/Std"),
            helper.make_node("Div", [t("Centred"), t("Std")], [t("Normed")], name=f"{scope}/Normed"),
            helper.make_node("Mul", [t("Normed"), f"{scope}/scale"], [t("Scaled")], name=f"{scope}/Scaled"),
            helper.make_node("Add", [t("Scaled"), f"{scope}/bias"], [t("Shifted")], name=f"{scope}/Shifted"),
            helper.make_node("Cast", [t("Shifted")], [node.output[0]], name=f"{scope}/CastBack", to=TensorProto.FLOAT),
        ]
    _replace_nodes(graph, nodes)
    return rewritten


def exact_lstms(proto) -> int:
    """Rewrite every LSTM node into standard ops whose activations and cell state are float64.

    ONNX Runtime's CPU LSTM is float32 only ("LSTM operator does not support double
    yet") and its activations are MLAS approximations (tanh up to 3.3e-7 from exact
    where torch's is 3.1e-8; logistic 1.6e-7 vs 8.9e-8). An LSTM amplifies float32
    rounding at a few sensitive (frame, unit) points: on the fixture model and
    ami_stereo_5s one output is 1.3e-4 from float64 under ONNX Runtime and 5.1e-5 under
    torch (docs/precision.md). Measured there, what the recurrence amplifies is
    the rounding of the activations and of the cell, not of the products: float32
    products with float64 activations and cell are 1.8e-5 (0.36x torch), as exact as an
    all-float64 recurrence, at two thirds of its cost, where float32 activations, even
    ones as exact as torch's, stay over 2x. Here, per LSTM node (ONNX semantics: gates
    i, o, f, c; default activations, no peepholes, clip, input_forget or sequence_lens):

    * the input is projected for all frames and both directions by one float32 MatMul by
      the stacked input weights plus (Wb + Rb);
    * the reverse direction's projections are reversed in time, and one `Scan` over
      frames carries, per direction (directions, batch, hidden), h in float32 and c in
      float64. Each step: the float32 MatMul by the recurrent weights, plus the
      projection, cast to double; every gate through one double Tanh (sigmoid(z) =
      (tanh(z / 2) + 1) / 2: ONNX Runtime's double Sigmoid is 2.4x its Tanh); the cell
      and tanh(cell) in double; h cast to float32 (the LSTM's output is float32);
    * the reverse direction's outputs are put back in time order.

    Cast, MatMul, Add, Mul, Reshape, Transpose, Slice, Split, Concat, Scan, Tanh (opset
    17). Nodes outside the supported configuration are left as they are. Returns how
    many nodes were rewritten."""
    from onnx import TensorProto, helper, numpy_helper

    F32, F64 = TensorProto.FLOAT, TensorProto.DOUBLE
    graph = proto.graph
    initializers = {init.name: init for init in graph.initializer}
    nodes, rewritten = [], 0
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        inputs = list(node.input) + [""] * (8 - len(node.input))
        x, w, r, b, lens, h0, c0, peep = inputs
        if (node.op_type != "LSTM" or set(attrs) - {"direction", "hidden_size"} or lens or peep
                or w not in initializers or r not in initializers or (b and b not in initializers)):
            nodes.append(node)
            continue
        rewritten += 1
        direction = attrs.get("direction", b"forward").decode()
        W = numpy_helper.to_array(initializers[w]).astype(np.float64)  # (D, 4H, I)
        R = numpy_helper.to_array(initializers[r]).astype(np.float64)  # (D, 4H, H)
        D, H4, _ = W.shape
        H = H4 // 4
        B = numpy_helper.to_array(initializers[b]).astype(np.float64) if b else np.zeros((D, 2 * H4))
        reverse = [d for d in range(D) if direction == "reverse" or (direction == "bidirectional" and d == 1)]
        scope = f"{node.name}/Exact"
        t = lambda name: f"{scope}/{name}_output_0"  # noqa: E731
        added = {
            f"{scope}/W": np.concatenate([W[d].T for d in range(D)], axis=1).astype(np.float32),  # (I, D*4H)
            f"{scope}/bias": np.concatenate([B[d, :H4] + B[d, H4:] for d in range(D)]).astype(np.float32),
            f"{scope}/shape": np.array([0, 0, D, H4], dtype=np.int64),
            f"{scope}/start": np.array([-1], dtype=np.int64),
            f"{scope}/end": np.array([np.iinfo(np.int64).min], dtype=np.int64),
            f"{scope}/axis0": np.array([0], dtype=np.int64),
            f"{scope}/step": np.array([-1], dtype=np.int64),
            f"{scope}/D": np.array([D], dtype=np.int64),
            f"{scope}/H": np.array([H], dtype=np.int64),
        }
        for name, value in added.items():
            graph.initializer.append(numpy_helper.from_array(value, name))

        def backwards(value, name, out):  # reverse `value` in time (axis 0)
            return helper.make_node("Slice", [value, f"{scope}/start", f"{scope}/end", f"{scope}/axis0", f"{scope}/step"],
                                    [out], name=f"{scope}/{name}")

        def in_time_order(value, name, out):  # the reverse directions of (T, D, ...) reversed in time
            if not reverse:
                return [helper.make_node("Identity", [value], [out], name=f"{scope}/{name}")]
            if D == 1:
                return [backwards(value, name, out)]
            parts = [t(f"{name}Split{d}") for d in range(D)]
            return [
                helper.make_node("Split", [value], parts, name=f"{scope}/{name}Split", axis=1),
                *[backwards(parts[d], f"{name}Reverse{d}", t(f"{name}Reverse{d}")) for d in reverse],
                helper.make_node("Concat", [t(f"{name}Reverse{d}") if d in reverse else parts[d] for d in range(D)],
                                 [out], name=f"{scope}/{name}Concat", axis=1),
            ]

        new = [
            helper.make_node("MatMul", [x, f"{scope}/W"], [t("Project")], name=f"{scope}/Project"),
            helper.make_node("Add", [t("Project"), f"{scope}/bias"], [t("Bias")], name=f"{scope}/Bias"),
            helper.make_node("Reshape", [t("Bias"), f"{scope}/shape"], [t("Directions")], name=f"{scope}/Directions"),
            helper.make_node("Transpose", [t("Directions")], [t("Inputs")], name=f"{scope}/Inputs", perm=[0, 2, 1, 3]),
            *in_time_order(t("Inputs"), "ScanInputs", t("ScanInputs")),
        ]
        for name, given, kind in (("h0", h0, F32), ("c0", c0, F64)):
            if given:
                new.append(helper.make_node("Cast", [given], [t(name)], name=f"{scope}/{name}", to=kind))
            else:  # zeros (D, batch, H)
                new += [
                    helper.make_node("Shape", [x], [t(f"{name}Batch")], name=f"{scope}/{name}Batch", start=1, end=2),
                    helper.make_node("Concat", [f"{scope}/D", t(f"{name}Batch"), f"{scope}/H"],
                                     [t(f"{name}Shape")], name=f"{scope}/{name}Shape", axis=0),
                    helper.make_node("ConstantOfShape", [t(f"{name}Shape")], [t(name)], name=f"{scope}/{name}",
                                     value=numpy_helper.from_array(np.zeros(1, helper.tensor_dtype_to_np_dtype(kind)))),
                ]
        s = lambda name: f"{scope}/Step/{name}_output_0"  # noqa: E731
        step = lambda op, ins, out, **kw: helper.make_node(op, ins, [out], name=f"{scope}/Step/{out.split('/')[-1]}", **kw)  # noqa: E731
        # sigmoid(z) = tanh(z / 2) / 2 + 1 / 2 for i, o, f; tanh(z) for c
        scale = np.concatenate([np.full(3 * H, 0.5), np.ones(H)])
        offset = np.concatenate([np.full(3 * H, 0.5), np.zeros(H)])
        body = helper.make_graph(
            [
                step("MatMul", ["h", "R"], s("Recurrent")),
                step("Add", ["x", s("Recurrent")], s("Gates")),
                step("Cast", [s("Gates")], s("Gates64"), to=F64),
                step("Mul", [s("Gates64"), "scale"], s("Scaled")),
                step("Tanh", [s("Scaled")], s("Tanh")),
                step("Mul", [s("Tanh"), "scale"], s("Half")),
                step("Add", [s("Half"), "offset"], s("Activated")),
                helper.make_node("Split", [s("Activated"), "gates"], [s("I"), s("O"), s("F"), s("G")],
                                 name=f"{scope}/Step/Split", axis=2),
                step("Mul", [s("F"), "c"], s("Keep")),
                step("Mul", [s("I"), s("G")], s("Write")),
                step("Add", [s("Keep"), s("Write")], "c_next"),
                step("Tanh", ["c_next"], s("CellTanh")),
                step("Mul", [s("O"), s("CellTanh")], s("Hidden")),
                step("Cast", [s("Hidden")], "h_next", to=F32),
                step("Identity", ["h_next"], "y"),
            ],
            f"{scope.strip('/').replace('/', '_')}_step",
            [helper.make_tensor_value_info(n, k, None) for n, k in (("h", F32), ("c", F64), ("x", F32))],
            [helper.make_tensor_value_info(n, k, None) for n, k in (("h_next", F32), ("c_next", F64), ("y", F32))],
            [numpy_helper.from_array(np.stack([R[d].T for d in range(D)]).astype(np.float32), "R"),  # (D, H, 4H)
             numpy_helper.from_array(np.array([H] * 4, np.int64), "gates"),
             numpy_helper.from_array(scale, "scale"),
             numpy_helper.from_array(offset, "offset")],
        )
        new.append(helper.make_node("Scan", [t("h0"), t("c0"), t("ScanInputs")], [t("hT"), t("cT"), t("Scan")],
                                    name=f"{scope}/Scan", num_scan_inputs=1, body=body))
        new += in_time_order(t("Scan"), "Outputs", node.output[0])
        for state, out in zip(("hT", "cT"), node.output[1:3]):
            if out:
                new.append(helper.make_node("Cast", [t(state)], [out], name=f"{scope}/{state}Out", to=F32))
        nodes += new
    _replace_nodes(graph, nodes)
    return rewritten


def _save(model_proto_path: Path, meta: dict, rewrite=None) -> None:
    import onnx

    proto = onnx.load(str(model_proto_path))
    if rewrite is not None:
        rewrite(proto)
    entry = proto.metadata_props.add()
    entry.key = "pyannote_port"
    entry.value = json.dumps(meta, sort_keys=True)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(model_proto_path))


def _session(path: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _refuse(path: Path, what: str, difference: float, bound: float) -> None:
    if not difference <= bound:  # NaN refuses too
        path.unlink(missing_ok=True)
        raise ExportError(f"{what}: ONNX Runtime differs from PyTorch by {difference:.3g} > {bound:g}; export refused")


def segmentation_metadata(model) -> dict:
    from pyannote.audio.utils.powerset import Powerset

    specifications = model.specifications
    num_samples = model.audio.get_num_samples(specifications.duration)
    frames = model.receptive_field
    meta = {
        "kind": "segmentation",
        "exporter": EXPORTER_VERSION,
        "source_sha256": models.checksum(model),
        "sample_rate": int(model.hparams.sample_rate),
        "duration": float(specifications.duration),
        "num_samples": int(num_samples),
        "num_frames": int(model.num_frames(num_samples)),
        "receptive_field": {"start": frames.start, "duration": frames.duration, "step": frames.step},
        "classes": list(specifications.classes),
        "num_speakers": len(specifications.classes),
        "powerset": bool(specifications.powerset),
        "powerset_max_classes": specifications.powerset_max_classes,
    }
    if specifications.powerset:
        powerset = Powerset(len(specifications.classes), specifications.powerset_max_classes)
        meta["mapping"] = powerset.mapping.numpy().astype(int).tolist()
    return meta


def _export_checked(
    module, path: Path, inputs: dict[str, np.ndarray], output: str, meta: dict,
    expected: np.ndarray, what: str, bound: float, scale: float = 1.0, rewrite=None,
) -> Path:
    """Export `module` (legacy exporter, dynamic batch, the first row of each input as
    the example), write `meta` into it, run ONNX Runtime on all of `inputs`, and refuse
    the export when max |ONNX - expected| / scale exceeds `bound`."""
    tmp = path.with_name(path.name + ".tmp")
    names = list(inputs)
    # torch.onnx.export restores the module's training flag afterwards, recursively: a
    # wrapper left in its default training mode would put the wrapped model's BatchNorms
    # into training mode for whoever uses the model next in this process
    module.eval()
    with torch.no_grad():
        torch.onnx.export(
            module,
            tuple(torch.from_numpy(inputs[name][:1]).clone() for name in names),
            str(tmp),
            input_names=names,
            output_names=[output],
            dynamic_axes={name: {0: "batch"} for name in [*names, output]},
            opset_version=OPSET,
            dynamo=False,
        )
    _save(tmp, meta, rewrite)
    got = _session(tmp).run(None, inputs)[0]
    _refuse(tmp, what, float(np.max(np.abs(got - expected.reshape(got.shape)))) / scale, bound)
    os.replace(tmp, path)
    return path


def _segmentation_rewrite(exact_lstm: bool):
    if not exact_lstm:
        return exact_instance_norms

    def rewrite(proto):
        exact_instance_norms(proto)
        if not exact_lstms(proto):
            raise ExportError("segmentation: exact_lstm asked for, but the graph has no LSTM node it can rewrite")

    return rewrite


def export_segmentation(model, path: Path, exact_lstm: bool = True) -> Path:
    """`exact_lstm` (the default): the LSTM as a Scan with float64 activations and cell
    (`exact_lstms`), as exact as torch at every layer; False keeps ONNX Runtime's LSTM
    op, 2.6x torch's error at the LSTM on ami_stereo_5s but about half the segmentation
    model's CPU time (docs/precision.md)."""
    meta = segmentation_metadata(model)
    meta["exact_lstm"] = bool(exact_lstm)
    chunks = _check_chunks(meta["num_samples"], meta["sample_rate"])
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(chunks)).numpy()
    return _export_checked(
        model, path, {"waveform": chunks}, "log_probs", meta, expected, "segmentation",
        export_bounds()["segmentation_atol"], rewrite=_segmentation_rewrite(exact_lstm),
    )


class _Whole(torch.nn.Module):
    """embedding.onnx: pyannote's ResNet (fbank, weights) -> embedding."""

    def __init__(self, resnet):
        super().__init__()
        self.resnet = resnet

    def forward(self, fbank, weights):
        return self.resnet(fbank, weights=weights)[1]


class _Trunk(torch.nn.Module):
    """embedding-trunk.onnx: `ResNet.forward_frames`."""

    def __init__(self, resnet):
        super().__init__()
        self.resnet = resnet

    def forward(self, fbank):
        return self.resnet.forward_frames(fbank)


class _Head(torch.nn.Module):
    """embedding-head.onnx: `ResNet.forward_embedding` (weights with a speaker axis)."""

    def __init__(self, resnet):
        super().__init__()
        self.resnet = resnet

    def forward(self, frames, weights):
        return self.resnet.forward_embedding(frames, weights=weights)[1]


def embedding_metadata(model, num_samples: int, num_frames: int, num_speakers: int) -> dict:
    from pyannote.audio.pipelines.speaker_verification import PyannoteAudioPretrainedSpeakerEmbedding

    hparams = {k: model.hparams[k] for k in (
        "sample_rate", "num_mel_bins", "frame_length", "frame_shift", "dither",
        "round_to_power_of_two", "snip_edges", "window_type", "use_energy", "fbank_centering_span",
    )}
    return {
        "kind": "embedding",
        "exporter": EXPORTER_VERSION,
        "source_sha256": models.checksum(model),
        "sample_rate": int(model.hparams.sample_rate),
        "dimension": int(model.dimension),
        "fbank": hparams,
        "min_num_samples": int(PyannoteAudioPretrainedSpeakerEmbedding(model).min_num_samples),
        "num_samples": int(num_samples),
        "num_frames": int(num_frames),
        "num_speakers": int(num_speakers),
    }


def export_embedding(model, folder: Path, num_samples: int, num_frames: int, num_speakers: int) -> dict[str, Path]:
    """The three embedding graphs; fbank of the check chunks computed by pyannote itself."""
    model.eval()
    meta = embedding_metadata(model, num_samples, num_frames, num_speakers)
    chunks = _check_chunks(num_samples, meta["sample_rate"])
    rng = np.random.default_rng(0)
    weights = (rng.random((len(chunks), num_speakers, num_frames)) > 0.5).astype(np.float32)
    weights[0, 0] = 1.0  # whole chunk
    weights[0, 1] = 0.0  # inactive speaker: pyannote still returns an embedding for it
    with torch.inference_mode():
        fbank = model.compute_fbank(torch.from_numpy(chunks)).clone().numpy()
    with torch.no_grad():
        frames = model.resnet.forward_frames(torch.from_numpy(fbank).clone()).numpy()
        expected = model.resnet.forward_embedding(torch.from_numpy(frames), weights=torch.from_numpy(weights))[1].numpy()
    meta["fbank_frames"] = int(fbank.shape[1])
    meta["trunk_shape"] = list(frames.shape[1:])
    bound = export_bounds()["embedding_atol"]
    return {
        # the single graph, as pyannote runs it: one (chunk, speaker) pair per row
        "embedding": _export_checked(
            _Whole(model.resnet), folder / "embedding.onnx",
            {"fbank": np.repeat(fbank, num_speakers, axis=0), "weights": weights.reshape(-1, num_frames)},
            "embeddings", {**meta, "kind": "embedding"}, expected, "embedding", bound,
        ),
        # trunk: fbank -> frame features, once per chunk (checked relative to their scale)
        "embedding-trunk": _export_checked(
            _Trunk(model.resnet), folder / "embedding-trunk.onnx", {"fbank": fbank},
            "frames", {**meta, "kind": "embedding-trunk"}, frames, "embedding trunk", bound,
            scale=max(1.0, float(np.max(np.abs(frames)))),
        ),
        # head: frame features + per-speaker weights -> one embedding per speaker
        "embedding-head": _export_checked(
            _Head(model.resnet), folder / "embedding-head.onnx", {"frames": frames, "weights": weights},
            "embeddings", {**meta, "kind": "embedding-head"}, expected, "embedding head", bound,
        ),
    }


def export(segmentation, embedding, out: Path | None = None, force: bool = False,
           exact_lstm: bool = True) -> dict[str, Path]:
    """Export both models into ``out/<sha12 of both>-v<exporter>[-onnxlstm]/``, reusing an
    earlier export of the same weights; returns {"segmentation": path, "embedding": ..., ...}.
    `out`: the model cache where the port looks (`port.__main__.models_home`) by default.
    `exact_lstm`: see `export_segmentation` (False: its own folder, ``-onnxlstm``)."""
    if out is None:
        from port.__main__ import models_home

        out = models_home()
    seg_sha = models.checksum(segmentation)
    emb_sha = models.checksum(embedding)
    folder = Path(out) / f"{seg_sha[:12]}-{emb_sha[:12]}-v{EXPORTER_VERSION}{'' if exact_lstm else '-onnxlstm'}"
    names = ["segmentation", "embedding", "embedding-trunk", "embedding-head"]
    paths = {name: folder / f"{name}.onnx" for name in names}
    if not force and all(p.is_file() for p in paths.values()):
        return {**paths, "fbank": ensure_fbank(folder, embedding)}  # fbank.onnx: an older export lacks it
    partial = folder.with_name(folder.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        meta = segmentation_metadata(segmentation)
        export_segmentation(segmentation, partial / "segmentation.onnx", exact_lstm=exact_lstm)
        export_embedding(embedding, partial, meta["num_samples"], meta["num_frames"], meta["num_speakers"])
        export_fbank(embedding, partial / "fbank.onnx")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return {**paths, "fbank": folder / "fbank.onnx"}


def export_fbank(embedding, path: str | Path, precision: str = "float64") -> Path:
    """``fbank.onnx`` for a pyannote WeSpeaker model, checked against its own
    ``compute_fbank`` on the export check chunks (refused beyond stage 06's atol)."""
    import onnxruntime

    from harness.compare import tolerances
    from port import fbank as kaldi

    hparams = {k: embedding.hparams[k] for k in kaldi.WESPEAKER_HPARAMS}
    meta = {"exporter": EXPORTER_VERSION, "source_sha256": models.checksum(embedding)}
    path = fbank_graph.save(path, hparams, precision, meta)
    chunks = _check_chunks(int(embedding.hparams.sample_rate) * 10, int(embedding.hparams.sample_rate))
    with torch.inference_mode():
        expected = embedding.compute_fbank(torch.from_numpy(chunks)).clone().numpy()
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    got = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(
        None, {"waveforms": chunks})[0]
    bound = float(tolerances()["06-fbank"].get("atol", 3e-3))
    difference = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else float("inf")
    if not difference <= bound:
        path.unlink(missing_ok=True)
        raise ExportError(f"fbank graph: ONNX Runtime differs from pyannote by {difference:.3g} > {bound:g}; export refused")
    return path


def ensure_fbank(folder: str | Path, embedding) -> Path:
    """``folder/fbank.onnx``, written when an earlier export lacks it."""
    path = Path(folder) / "fbank.onnx"
    return path if path.is_file() else export_fbank(embedding, path)


# ----------------------------------------------------------------------------- the fast mode's graphs
# `--precision fast` (port/runtime.py) runs these instead of the exact graphs. Each is
# derived from an exported graph of the same weights and kept beside it, in
# `<export>/fast/`: the segmentation with ONNX Runtime's LSTM op (exporter v2's graph,
# `export_segmentation(exact_lstm=False)`), and the embedding trunk quantized to int8
# (dynamic, and static with activation ranges calibrated on speech) and converted to
# float16 (for CUDA). Which trunk runs is chosen on the machine that runs it, by
# measuring (port/runtime.py: fast_trunk).
FAST_DIR = "fast"
FAST_TRUNKS = {  # file name -> formulation, as the port names them
    "embedding-trunk.int8-dynamic.onnx": "int8-dynamic",
    "embedding-trunk.int8-static.onnx": "int8-static",
    "embedding-trunk.float16.onnx": "float16",
}
# the speech the static quantization's activation ranges are calibrated on: the bundled
# non-AMI test audio (the AMI excerpts are what the modes are judged on)
CALIBRATION_AUDIO = ("sample.wav", "test_16k.wav")


def _calibration_fbank(embedding_meta: dict) -> np.ndarray:
    """fbank of 10 s chunks every 3 s of the calibration audio (numpy fbank, as the port computes it)."""
    import soundfile as sf

    from port import fbank as kaldi

    rate, size = embedding_meta["sample_rate"], embedding_meta["num_samples"]
    chunks = []
    for name in CALIBRATION_AUDIO:
        waveform, file_rate = sf.read(REPO / "tests" / "data" / name, dtype="float32", always_2d=True)
        if file_rate != rate:
            continue
        waveform = waveform.mean(axis=1)
        for start in range(0, max(1, len(waveform) - size + 1), 3 * rate):
            piece = np.zeros(size, dtype=np.float32)
            part = waveform[start : start + size]
            piece[: len(part)] = part
            chunks.append(piece)
    return kaldi.compute_fbank(np.stack(chunks)[:, None, :], embedding_meta["fbank"])


def _with_formulation(path: Path, formulation: str) -> None:
    """The derived graph's pyannote_port metadata names its formulation."""
    import onnx

    proto = onnx.load(str(path))
    for entry in proto.metadata_props:
        if entry.key == "pyannote_port":
            entry.value = json.dumps({**json.loads(entry.value), "formulation": formulation}, sort_keys=True)
    onnx.save(proto, str(path))


def derive_trunk(float_trunk: Path, target: Path, formulation: str) -> Path:
    """A fast trunk derived from the exported float32 trunk: int8-dynamic
    (`quantize_dynamic`: ConvInteger, activations quantized per call), int8-static
    (`quantize_static`, QDQ: int8 per-channel weights, uint8 activations whose ranges are
    calibrated (min-max) on CALIBRATION_AUDIO) or float16 (float32 inputs and outputs)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    if formulation == "int8-dynamic":
        quantize_dynamic(str(float_trunk), str(tmp), weight_type=QuantType.QUInt8)
    elif formulation == "int8-static":
        proto = onnx.load(str(float_trunk))
        meta = json.loads(next(e.value for e in proto.metadata_props if e.key == "pyannote_port"))
        fbank = _calibration_fbank(meta)

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.rows = iter(range(len(fbank)))

            def get_next(self):
                row = next(self.rows, None)
                return None if row is None else {"fbank": fbank[row : row + 1]}

        quantize_static(str(float_trunk), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    elif formulation == "float16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        onnx.save(convert_float_to_float16(onnx.load(str(float_trunk)), keep_io_types=True), str(tmp))
    else:
        raise ValueError(f"unknown trunk formulation {formulation!r}")
    _with_formulation(tmp, formulation)
    os.replace(tmp, target)
    return target


def ensure_fast(folder: str | Path, segmentation) -> dict[str, Path]:
    """The fast mode's graphs in ``folder/fast/`` (written once, beside the export they
    derive from); {"segmentation": path, "int8-static": path, ...}."""
    folder = Path(folder)
    fast = folder / FAST_DIR
    fast.mkdir(exist_ok=True)
    paths = {"segmentation": fast / "segmentation.onnx"}
    if not paths["segmentation"].is_file():
        tmp = fast / f".segmentation.{os.getpid()}.onnx"
        try:
            export_segmentation(segmentation, tmp, exact_lstm=False)
            _with_formulation(tmp, "lstm-op")
            os.replace(tmp, paths["segmentation"])
        finally:
            tmp.unlink(missing_ok=True)
    for name, formulation in FAST_TRUNKS.items():
        paths[formulation] = fast / name
        if not paths[formulation].is_file():
            derive_trunk(folder / "embedding-trunk.onnx", paths[formulation], formulation)
    return paths
