#!/usr/bin/env python3
"""Why is ONNX Runtime's LSTM less exact than torch's? (docs/precision.md: why ONNX Runtime's LSTM is less exact)

    python benchmarks/lstm_precision.py [FILE] [--onnx segmentation.onnx]

Fixture segmentation model, one chunk of FILE (default tests/data/ami_stereo_5s.wav),
float64 torch as the truth. Prints

1. ONNX Runtime's float32 Sigmoid and Tanh ops (MLAS) against exact, next to torch's;
2. per LSTM layer, on the same float32 input (the float64 output of the layer before,
   rounded): ONNX Runtime's LSTM op, torch's, numpy float32 with correctly rounded
   activations and numpy float32 with ONNX Runtime's Sigmoid/Tanh;
3. the 4-layer LSTM's output error by input (torch's SincNet, ONNX Runtime's, float32 of
   float64's) and kernel (torch float32, ONNX Runtime, float64).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np

from common import REPO

IR = 8  # ONNX Runtime 1.31 reads IR <= 13; the small graphs below need nothing newer


def _session(graph, ort):
    from onnx import helper

    options = ort.SessionOptions()
    options.log_severity_level, options.intra_op_num_threads = 3, 1
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=IR)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("audio", nargs="?", default=str(REPO / "tests" / "data" / "ami_stereo_5s.wav"))
    parser.add_argument("--onnx", help="segmentation.onnx with ONNX LSTM nodes (default: the fixture export)")
    args = parser.parse_args(argv)

    import onnx
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper, numpy_helper

    from port import audio
    from reference import audit, export, models

    torch.set_num_threads(1)
    seg = models.load("segmentation", "fixture").eval()
    seg64 = copy.deepcopy(seg).double()
    path = Path(args.onnx) if args.onnx else export.export(seg, models.load("embedding", "fixture"), exact_lstm=False)["segmentation"]
    proto = onnx.load(str(path))
    lstms = [n for n in proto.graph.node if n.op_type == "LSTM"]
    if not lstms:
        print(f"error: {path}: no LSTM node (an exact_lstm export?)", file=sys.stderr)
        return 2
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    H = int(next(a.i for a in lstms[0].attribute if a.name == "hidden_size"))
    waveform, rate = audio.load(args.audio)
    waveform, _ = audio.downmix_and_resample(waveform, rate, 16000)
    chunks = audit.chunks_of(waveform[0], 16000, 160000, 1)
    tensor = lambda name, t: helper.make_tensor_value_info(name, t, None)  # noqa: E731

    def unary(op):
        s = _session(helper.make_graph([helper.make_node(op, ["X"], ["Y"])], op, [tensor("X", TensorProto.FLOAT)],
                                       [tensor("Y", TensorProto.FLOAT)]), ort)
        return lambda v: s.run(None, {"X": np.ascontiguousarray(v, dtype=np.float32)})[0]

    ort_sigmoid, ort_tanh = unary("Sigmoid"), unary("Tanh")
    sigmoid64 = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    rounded = lambda f: (lambda v: f(v.astype(np.float64)).astype(np.float32))  # noqa: E731

    print("1. activations, max (mean) abs error on 2M points of [-12, 12]")
    v = np.linspace(-12, 12, 2_000_001).astype(np.float32)
    for name, ours, theirs, exact in (("sigmoid", ort_sigmoid, torch.sigmoid, sigmoid64), ("tanh", ort_tanh, torch.tanh, np.tanh)):
        truth = exact(v.astype(np.float64))
        errors = {"ONNX Runtime": ours(v), "torch": theirs(torch.from_numpy(v)).numpy(), "rounded": truth.astype(np.float32)}
        print(f"   {name:8s}" + "".join(f"  {k} {np.abs(e - truth).max():.2e} ({np.abs(e - truth).mean():.1e})"
                                       for k, e in errors.items()))

    def ort_layer(node, x):  # (B, T, I) float32 -> (B, T, 2H)
        W, R, B = (inits[n] for n in node.input[1:4])
        graph = helper.make_graph(
            [helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y"], direction="bidirectional", hidden_size=H)], "lstm",
            [tensor("X", TensorProto.FLOAT)], [tensor("Y", TensorProto.FLOAT)],
            [numpy_helper.from_array(a, n) for a, n in ((W, "W"), (R, "R"), (B, "B"))])
        y = _session(graph, ort).run(None, {"X": np.ascontiguousarray(x.transpose(1, 0, 2))})[0]
        return y.transpose(2, 0, 1, 3).reshape(x.shape[0], x.shape[1], 2 * H)

    def numpy_layer(node, x, dtype, sigmoid, tanh):  # ONNX semantics: gates i, o, f, c
        W, R, B = (inits[n].astype(dtype) for n in node.input[1:4])
        out = np.zeros((x.shape[0], x.shape[1], 2 * H), dtype)
        for d in range(2):
            projected = x.astype(dtype) @ W[d].T + (B[d, : 4 * H] + B[d, 4 * H :])
            h = np.zeros((x.shape[0], H), dtype)
            c = np.zeros_like(h)
            for t in (range(x.shape[1]) if d == 0 else range(x.shape[1] - 1, -1, -1)):
                g = projected[:, t] + h @ R[d].T
                i, o, f, cell = (g[:, k * H : (k + 1) * H] for k in range(4))
                c = (sigmoid(f) * c + sigmoid(i) * tanh(cell)).astype(dtype)
                h = (sigmoid(o) * tanh(c)).astype(dtype)
                out[:, t, d * H : (d + 1) * H] = h
        return out

    def torch_layer(k, x, dtype):
        layer = torch.nn.LSTM(x.shape[-1], H, batch_first=True, bidirectional=True).to(dtype)
        with torch.no_grad():
            for suffix in ("", "_reverse"):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(layer, f"{name}_l0{suffix}").copy_(getattr(seg.lstm, f"{name}_l{k}{suffix}").to(dtype))
            return layer(torch.from_numpy(x).to(dtype))[0].numpy()

    with torch.no_grad():
        sinc64 = seg64.sincnet(torch.from_numpy(chunks).double()).permute(0, 2, 1).numpy()
        sinc32 = seg.sincnet(torch.from_numpy(chunks)).permute(0, 2, 1).numpy()
    print("\n2. one layer at a time, same float32 input: max (p99) abs error against float64")
    x = sinc64
    for k, node in enumerate(lstms):
        x32 = x.astype(np.float32)
        truth = torch_layer(k, x32, torch.float64)
        results = {"torch": torch_layer(k, x32, torch.float32), "ONNX Runtime": ort_layer(node, x32),
                   "numpy rounded act.": numpy_layer(node, x32, np.float32, rounded(sigmoid64), rounded(np.tanh)),
                   "numpy ORT act.": numpy_layer(node, x32, np.float32, ort_sigmoid, ort_tanh)}
        print(f"   layer {k}" + "".join(f"  {n} {np.abs(y - truth).max():.2e} ({np.percentile(np.abs(y - truth), 99):.1e})"
                                      for n, y in results.items()), flush=True)
        x = truth

    extra = copy.deepcopy(proto)
    extra.graph.output.append(onnx.ValueInfoProto(name=lstms[0].input[0]))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(extra.SerializeToString(), options, providers=["CPUExecutionProvider"])
    ort_sinc = session.run([lstms[0].input[0]], {"waveform": chunks})[0].transpose(1, 0, 2)  # (T, B, C) -> (B, T, C)
    with torch.no_grad():
        truth = seg64.lstm(torch.from_numpy(sinc64))[0].numpy()
        kernels = {
            "torch f32": lambda x: seg.lstm(torch.from_numpy(x))[0].numpy(),
            "ONNX Runtime": lambda x: _chain(lstms, ort_layer, x),
            "float64": lambda x: seg64.lstm(torch.from_numpy(x.astype(np.float64)))[0].numpy(),
        }
        print("\n3. 4-layer LSTM output, max abs error against the float64 pipeline [where: chunk, frame, unit]")
        for name, inputs in (("torch SincNet", sinc32), ("ONNX Runtime SincNet", ort_sinc), ("float32(float64 SincNet)", sinc64.astype(np.float32))):
            line = f"   input {name:25s}"
            for kernel, run in kernels.items():
                d = np.abs(run(inputs).astype(np.float64) - truth)
                line += f"  {kernel} {d.max():.2e} {list(map(int, np.unravel_index(d.argmax(), d.shape)))}"
            print(line, flush=True)
    return 0


def _chain(nodes, layer, x):
    for node in nodes:
        x = layer(node, x)
    return x


if __name__ == "__main__":
    sys.exit(main())
