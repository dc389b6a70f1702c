"""Per-layer precision audit: is the exported graph as exact as pyannote, layer by layer?

For an exported ONNX graph and the torch module it came from, on given inputs:

* every torch submodule's output is captured by a forward hook, once in float32 (what
  pyannote computes) and once in a float64 copy of the module (the truth);
* the ONNX value computed at the same point (the last node inside the submodule's
  export scope, e.g. ``/sincnet/wav_norm1d/InstanceNormalization``) is exposed as an
  extra graph output and ONNX Runtime (CPU, float32) computes it;
* per layer: ONNX Runtime's error against float64, torch float32's error against
  float64, their ratio, and where the ONNX Runtime error is largest.

A ratio over 2 says the graph (ONNX Runtime's kernel for that op) is less exact than
pyannote at that layer: the first such layer in execution order is the cause; later
layers carry its error. Unlike a layer-by-layer check against a fixed tolerance
(Polygraphy's), the yardstick is the reference's own float32 error at that layer.

Layers are matched by export scope: the legacy TorchScript exporter names each node
``/<module>/<child>/.../<Op>``. Modules whose scope holds no node (a BatchNorm folded
into the convolution before it) take the value of the node that absorbed them.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

RATIO_LIMIT = 2.0
EPS32 = float(np.finfo(np.float32).eps)


@dataclass
class Layer:
    layer: str            # the torch submodule (qualified name)
    node: str             # the ONNX node whose output stands for it
    shape: list
    ort_error: float      # max |ONNX Runtime float32 - torch float64|
    torch_error: float    # max |torch float32 - torch float64|
    ratio: float          # ort_error / max(torch_error, 1 ulp of the layer's scale)
    ort_p99: float
    torch_p99: float
    ratio_p99: float
    where: list           # index of the largest ONNX Runtime error (chunk, channel/frame, ...)
    scale: float          # max |float64 value|


def _scope(node_name: str) -> str:
    """`/layer1/layer1.0/conv1/Conv` -> `layer1.0.conv1` (the module's qualified name)."""
    parts = node_name.strip("/").split("/")[:-1]
    qualified = ""
    for part in parts:
        if qualified and part.startswith(qualified + "."):
            qualified = part
        else:
            qualified = f"{qualified}.{part}" if qualified else part
    return qualified


def _inside(scope: str, module: str) -> bool:
    return scope == module or scope.startswith(module + ".")


def _hooked(root: torch.nn.Module, run) -> tuple[dict[str, np.ndarray], list[str]]:
    """Outputs of every submodule of `root` (first output of tuples) and the call order."""
    outputs: dict[str, np.ndarray] = {}
    order: list[str] = []
    handles = []
    for name, module in root.named_modules():
        if not name:
            continue

        def hook(module, inputs, output, name=name):
            value = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(value, torch.Tensor) and name not in outputs:
                outputs[name] = value.detach().cpu().numpy().copy()
                order.append(name)

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            final = run()
    finally:
        for handle in handles:
            handle.remove()
    outputs["<output>"] = final.detach().cpu().numpy().copy()
    order.append("<output>")
    return outputs, order


def _match(proto, order: list[str], shapes: dict[str, tuple], root_modules: dict) -> dict[str, str]:
    """module name -> ONNX value name standing for its output."""
    nodes = [n for n in proto.graph.node if n.op_type != "Constant"]
    scopes = [_scope(n.name) for n in nodes]
    matched: dict[str, str] = {}
    for name in order:
        if name == "<output>":
            matched[name] = proto.graph.output[0].name
            continue
        inside = [n for n, s in zip(nodes, scopes) if _inside(s, name)]
        if inside:
            matched[name] = inside[-1].output[0]
    # a BatchNorm folded into the Conv called just before it: the Conv's node is the BatchNorm's output
    for previous, name in itertools.pairwise(order):
        module = root_modules.get(name)
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and name not in matched and previous in matched:
            matched[name] = matched.pop(previous)
    return matched


def _aligned(value: np.ndarray, shape: tuple, guide: np.ndarray) -> np.ndarray | None:
    """`value` brought to `shape` (same array, or the axis permutation closest to `guide`)."""
    if value.shape == tuple(shape):
        return value
    if sorted(value.shape) != sorted(shape):
        return None
    best, best_error = None, np.inf
    for perm in itertools.permutations(range(value.ndim)):
        candidate = value.transpose(perm)
        if candidate.shape == tuple(shape):
            error = float(np.max(np.abs(candidate - guide)))
            if error < best_error:
                best, best_error = candidate, error
    return best


def _session(proto):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(proto.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])


def audit(onnx_path: str | Path, root: torch.nn.Module, forward, inputs: dict[str, np.ndarray]) -> list[Layer]:
    """Audit one graph. `forward(module, tensors)` runs `root` (or a copy of it) on the
    inputs as torch tensors, in the order of `inputs`; `root` is the module whose
    submodules the hooks watch and whose names the export scopes carry."""
    import onnx

    root = root.eval()
    tensors32 = [torch.from_numpy(np.ascontiguousarray(v)) for v in inputs.values()]
    out32, order = _hooked(root, lambda: forward(root, tensors32))
    root64 = copy.deepcopy(root).double()
    tensors64 = [t.double() if t.is_floating_point() else t for t in tensors32]
    out64, _ = _hooked(root64, lambda: forward(root64, tensors64))

    proto = onnx.load(str(onnx_path))
    modules = dict(root.named_modules())
    matched = _match(proto, order, {k: v.shape for k, v in out32.items()}, modules)
    present = {o.name for o in proto.graph.output}
    for value in dict.fromkeys(matched.values()):
        if value not in present:
            proto.graph.output.append(onnx.ValueInfoProto(name=value))
    names = [o.name for o in proto.graph.output]
    feeds = {name: inputs[name] for name in inputs if name in {i.name for i in proto.graph.input}}
    got = dict(zip(names, _session(proto).run(names, feeds)))

    layers = []
    for name in order:
        if name not in matched or name not in out64:
            continue
        truth = out64[name]
        torch32 = out32[name].astype(np.float64)
        ort = _aligned(np.asarray(got[matched[name]], dtype=np.float64), truth.shape, torch32)
        if ort is None:  # the scope's last node is not the module's output (e.g. a filterbank constant)
            continue
        ort_diff, torch_diff = np.abs(ort - truth), np.abs(torch32 - truth)
        scale = float(np.max(np.abs(truth))) if truth.size else 0.0
        ulp = EPS32 * max(scale, np.finfo(np.float32).tiny)
        ort_error, torch_error = float(ort_diff.max()), float(torch_diff.max())
        ort_p99, torch_p99 = (float(np.percentile(d, 99)) for d in (ort_diff, torch_diff))
        layers.append(Layer(
            layer=name, node=matched[name], shape=list(truth.shape),
            ort_error=ort_error, torch_error=torch_error, ratio=ort_error / max(torch_error, ulp),
            ort_p99=ort_p99, torch_p99=torch_p99, ratio_p99=ort_p99 / max(torch_p99, ulp),
            where=[int(i) for i in np.unravel_index(int(np.argmax(ort_diff)), ort_diff.shape)],
            scale=scale,
        ))
    return layers


def first_over(layers: list[Layer], limit: float = RATIO_LIMIT) -> Layer | None:
    """The first layer (execution order) where ONNX Runtime is over `limit` x torch's error."""
    return next((layer for layer in layers if layer.ratio > limit or layer.ratio_p99 > limit), None)


# ----------------------------------------------------------------------------- the models
def chunks_of(waveform: np.ndarray, sample_rate: int, num_samples: int, max_chunks: int) -> np.ndarray:
    """Mono waveform (samples,) -> at most `max_chunks` chunks (N, 1, num_samples), as the
    pipeline cuts them: 10 s windows, step 1 s (chunks chosen evenly), last one zero-padded."""
    step = sample_rate  # 1 s, pyannote's segmentation step
    starts = list(range(0, max(1, len(waveform) - num_samples + step), step))
    if len(waveform) > num_samples and (len(waveform) - num_samples) % step:
        starts.append(starts[-1] + step)  # the zero-padded last chunk
    if len(starts) > max_chunks:
        starts = [starts[int(round(i))] for i in np.linspace(0, len(starts) - 1, max_chunks)]
    chunks = np.zeros((len(starts), 1, num_samples), dtype=np.float32)
    for i, start in enumerate(starts):
        piece = waveform[start : start + num_samples]
        chunks[i, 0, : len(piece)] = piece
    return chunks


def audit_segmentation(model, onnx_path: str | Path, chunks: np.ndarray) -> list[Layer]:
    return audit(onnx_path, model, lambda m, t: m(t[0]), {"waveform": chunks})


def audit_embedding(model, trunk_path: str | Path, head_path: str | Path, chunks: np.ndarray,
                    num_speakers: int = 3, num_frames: int = 589, seed: int = 0) -> dict[str, list[Layer]]:
    """Trunk on pyannote's fbank of the chunks; head on torch float32's trunk output and
    per-speaker 0/1 weights (one speaker active throughout, the others random)."""
    model = model.eval()
    with torch.inference_mode():
        fbank = model.compute_fbank(torch.from_numpy(chunks)).clone().numpy()
    with torch.no_grad():
        frames = model.resnet.forward_frames(torch.from_numpy(fbank).clone()).numpy()
    rng = np.random.default_rng(seed)
    weights = (rng.random((len(chunks), num_speakers, num_frames)) > 0.5).astype(np.float32)
    weights[:, 0] = 1.0
    return {
        "embedding-trunk": audit(trunk_path, model.resnet, lambda m, t: m.forward_frames(t[0]), {"fbank": fbank}),
        "embedding-head": audit(head_path, model.resnet, lambda m, t: m.forward_embedding(t[0], weights=t[1])[1],
                                {"frames": frames, "weights": weights}),
    }


def as_json(layers: list[Layer]) -> dict:
    first = first_over(layers)
    return {"layers": [asdict(layer) for layer in layers], "first_over": first.layer if first else None,
            "ratio_limit": RATIO_LIMIT}
