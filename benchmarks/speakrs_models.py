"""This project's models in the folder speakrs' CPU mode loads (`speakrs.required_model_files("CPU")`).

    segmentation-3.0.safetensors          PyanNet, float32, under the names torch.onnx.export gives
                                          its initializers (what speakrs reads):
                                            pyannote's own names for SincNet, the norms and the biases;
                                            `onnx::Div_*`: SincNet's `n_ / 2` (folded by the export);
                                            `onnx::LSTM_*`: 12, per layer B (dirs, 8H), W (dirs, 4H, in),
                                              R (dirs, 4H, H) in that numeric order, gates in ONNX's
                                              i-o-f-c order, forward then reverse direction;
                                            `onnx::MatMul_*`: the three linear weights, transposed (in, out)
    wespeaker-multimask-tail.safetensors  ResNet34, float32, 74 tensors: each convolution with the
                                          BatchNorm after it folded in (`<conv>.weight`, `<conv>.weight_bias`)
                                          and the embedding layer `resnet.seg_1.{weight,bias}`
    plda_{mean1,mean2,lda}.npy            community-1's xvec_transform.npz, as stored (dtypes kept)
    plda_{mu,tr,psi}.npy                  community-1's plda.npz, as stored
    wespeaker-voxceleb-resnet34.min_num_samples.txt
                                          pyannote's own `min_num_samples` for the embedding model

speakrs matches the generated names by prefix and numeric order, checks every shape and
dtype, and refuses an embedding file with any name missing or extra. `check_conversion`
proves the mapping tensor by tensor (see its docstring).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

SEGMENTATION_FILE = "segmentation-3.0.safetensors"
EMBEDDING_FILE = "wespeaker-multimask-tail.safetensors"
MIN_NUM_SAMPLES_FILE = "wespeaker-voxceleb-resnet34.min_num_samples.txt"
PLDA_FILES = {  # speakrs' file -> (community-1's file, array)
    "plda_mean1.npy": ("xvec_transform.npz", "mean1"),
    "plda_mean2.npy": ("xvec_transform.npz", "mean2"),
    "plda_lda.npy": ("xvec_transform.npz", "lda"),
    "plda_mu.npy": ("plda.npz", "mu"),
    "plda_tr.npy": ("plda.npz", "tr"),
    "plda_psi.npy": ("plda.npz", "psi"),
}
LSTM_LAYERS = 4
# torch's gate blocks are i, f, g, o; ONNX's are i, o, f, c (c = g): ONNX block k is torch block _TORCH_OF_ONNX[k]
_TORCH_OF_ONNX = (0, 3, 1, 2)
# generated names: numbers grow in graph order, as in an export (speakrs sorts each prefix by number)
_LSTM_BASE, _MATMUL_BASE, _DIV_BASE = 800, 900, 700


class ConversionError(Exception):
    """A model that does not fit speakrs' layout, or a conversion check that failed (one line)."""


def _numpy_state(model) -> dict[str, np.ndarray]:
    return {name: tensor.detach().cpu().numpy() for name, tensor in model.state_dict().items()}


def _onnx_gates(matrix: np.ndarray, hidden: int) -> np.ndarray:
    blocks = [matrix[k * hidden:(k + 1) * hidden] for k in range(4)]
    return np.concatenate([blocks[k] for k in _TORCH_OF_ONNX], axis=0)


def lstm_names() -> list[tuple[str, str]]:
    """(kind, name) of the 12 LSTM initializers in numeric order: B, W, R per layer."""
    return [(kind, f"onnx::LSTM_{_LSTM_BASE + 3 * layer + i}")
            for layer in range(LSTM_LAYERS) for i, kind in enumerate("BWR")]


def segmentation_tensors(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """PyanNet's torch state dict (numpy) -> speakrs' segmentation tensors (float32)."""
    out: dict[str, np.ndarray] = {}
    for name, value in state.items():
        if name.startswith("sincnet.") or (name.endswith(".bias") and name.startswith(("linear.", "classifier."))):
            out[name] = value
    n = state.get("sincnet.conv1d.0.filterbank.n_")
    if n is None:
        raise ConversionError("segmentation: no SincNet filterbank n_ (not segmentation-3.0's PyanNet)")
    out[f"onnx::Div_{_DIV_BASE}"] = n / np.float32(2)  # exact in float32
    names = iter(lstm_names())
    for layer in range(LSTM_LAYERS):
        hidden = state[f"lstm.weight_hh_l{layer}"].shape[1]
        per_direction = {"W": [], "R": [], "B": []}
        for suffix in ("", "_reverse"):
            per_direction["W"].append(_onnx_gates(state[f"lstm.weight_ih_l{layer}{suffix}"], hidden))
            per_direction["R"].append(_onnx_gates(state[f"lstm.weight_hh_l{layer}{suffix}"], hidden))
            per_direction["B"].append(np.concatenate([_onnx_gates(state[f"lstm.bias_ih_l{layer}{suffix}"], hidden),
                                                      _onnx_gates(state[f"lstm.bias_hh_l{layer}{suffix}"], hidden)]))
        for _ in range(3):
            kind, name = next(names)
            out[name] = np.stack(per_direction[kind])
    for i, layer in enumerate(("linear.0", "linear.1", "classifier")):
        out[f"onnx::MatMul_{_MATMUL_BASE + i}"] = state[f"{layer}.weight"].T
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in out.items()}


def _conv_bn_pairs(state: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    """(convolution, its BatchNorm) prefixes of WeSpeaker's ResNet34, in the state dict's order."""
    pairs = []
    for name in state:
        if not (name.endswith(".weight") and state[name].ndim == 4):
            continue
        conv = name[: -len(".weight")]
        if conv.endswith(".shortcut.0"):
            bn = conv[: -len(".0")] + ".1"
        else:  # resnet.conv1 -> resnet.bn1, layerX.Y.conv2 -> layerX.Y.bn2
            head, _, last = conv.rpartition(".")
            bn = f"{head}.bn{last[len('conv'):]}"
        if f"{bn}.running_var" not in state:
            raise ConversionError(f"embedding: no BatchNorm after {conv} (not WeSpeaker's ResNet34)")
        pairs.append((conv, bn))
    return pairs


def embedding_tensors(state: dict[str, np.ndarray], eps: float) -> dict[str, np.ndarray]:
    """WeSpeaker ResNet34's torch state dict (numpy) -> speakrs' 74 tensors: BatchNorm (eval:
    (x - mean) / sqrt(var + eps) * gamma + beta) folded into the convolution before it, in
    float64 and rounded once to float32."""
    out: dict[str, np.ndarray] = {}
    for conv, bn in _conv_bn_pairs(state):
        gamma, beta, mean, var = (state[f"{bn}.{k}"].astype(np.float64)
                                  for k in ("weight", "bias", "running_mean", "running_var"))
        scale = gamma / np.sqrt(var + eps)
        out[f"{conv}.weight"] = state[f"{conv}.weight"].astype(np.float64) * scale[:, None, None, None]
        out[f"{conv}.weight_bias"] = beta - mean * scale
    for k in ("weight", "bias"):
        out[f"resnet.seg_1.{k}"] = state[f"resnet.seg_1.{k}"]
    extra = [name for name in state if name.startswith("resnet.seg_2") or name.startswith("resnet.seg_bn")]
    if extra:
        raise ConversionError(f"embedding: {extra[0]}: a second embedding layer speakrs does not load")
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in out.items()}


def plda_arrays(plda_dir: str | Path) -> dict[str, np.ndarray]:
    """community-1's PLDA as speakrs' six .npy arrays (values and dtypes as stored)."""
    plda_dir = Path(plda_dir)
    arrays = {}
    for file, (source, key) in PLDA_FILES.items():
        try:
            with np.load(plda_dir / source) as data:
                arrays[file] = np.array(data[key])
        except (OSError, KeyError, ValueError) as error:
            raise ConversionError(f"PLDA {plda_dir / source}: {str(error).splitlines()[0][:120]}") from None
    return arrays


def exported_min_num_samples(onnx_folder: str | Path) -> int:
    """pyannote's min_num_samples as the port's ONNX export stored it (reference/export.py
    ran pyannote's probe on the same model)."""
    import json

    import onnx

    model = onnx.load(str(Path(onnx_folder) / "embedding-trunk.onnx"), load_external_data=False)
    meta = next(p.value for p in model.metadata_props if p.key == "pyannote_port")
    return int(json.loads(meta)["min_num_samples"])


_MIN_NUM_SAMPLES: dict[int, int] = {}


def min_num_samples(embedding_model) -> int:
    """pyannote's own probe of the smallest crop the embedding model accepts (a binary
    search over forward passes: seconds, so asked once per model object)."""
    from pyannote.audio.pipelines.speaker_verification import PyannoteAudioPretrainedSpeakerEmbedding

    key = id(embedding_model)
    if key not in _MIN_NUM_SAMPLES:
        _MIN_NUM_SAMPLES[key] = int(PyannoteAudioPretrainedSpeakerEmbedding(embedding_model).min_num_samples)
    return _MIN_NUM_SAMPLES[key]


def _bn_eps(embedding_model) -> float:
    import torch

    eps = {m.eps for m in embedding_model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    if len(eps) != 1:
        raise ConversionError(f"embedding: BatchNorm eps {sorted(eps)} (expected one value)")
    return float(eps.pop())


def folder_key(segmentation_model, embedding_model, plda_dir: str | Path) -> str:
    """A name for the converted folder: the models' and the PLDA's checksums."""
    from reference import models

    digest = hashlib.sha256()
    for source in sorted(PLDA_FILES.values()):
        digest.update((Path(plda_dir) / source[0]).read_bytes())
    return f"{models.checksum(segmentation_model)[:12]}-{models.checksum(embedding_model)[:12]}-{digest.hexdigest()[:8]}"


def convert(segmentation_model, embedding_model, plda_dir: str | Path, out: str | Path,
            min_samples: int | None = None) -> Path:
    """Write speakrs' CPU model folder at `out` (atomically: a folder is complete or absent).
    `min_samples`: pyannote's min_num_samples when already known (the port's export
    metadata holds it); else pyannote's probe runs."""
    from safetensors.numpy import save_file

    out = Path(out)
    segmentation = segmentation_tensors(_numpy_state(segmentation_model))
    embedding = embedding_tensors(_numpy_state(embedding_model), _bn_eps(embedding_model))
    plda = plda_arrays(plda_dir)
    samples = min_samples if min_samples is not None else min_num_samples(embedding_model)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_file(segmentation, str(tmp / SEGMENTATION_FILE), metadata={"source": "pyannote-port benchmarks/peers.py"})
        save_file(embedding, str(tmp / EMBEDDING_FILE), metadata={"source": "pyannote-port benchmarks/peers.py"})
        for file, value in plda.items():
            np.save(tmp / file, value)
        (tmp / MIN_NUM_SAMPLES_FILE).write_text(f"{samples}\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def ensure(segmentation_model, embedding_model, plda_dir: str | Path, root: str | Path,
           min_samples: int | None = None) -> Path:
    """The converted folder under `root`, made once per (models, PLDA)."""
    folder = Path(root) / folder_key(segmentation_model, embedding_model, plda_dir)
    if not all((folder / name).is_file() for name in required_files()):
        convert(segmentation_model, embedding_model, plda_dir, folder, min_samples)
    return folder


def required_files() -> list[str]:
    """The files speakrs' CPU mode loads (asked of speakrs when installed)."""
    try:
        import speakrs
    except ImportError:
        return [SEGMENTATION_FILE, EMBEDDING_FILE, MIN_NUM_SAMPLES_FILE, *PLDA_FILES]
    return list(speakrs.required_model_files("CPU"))


# --------------------------------------------------------------------------- the proof
def _onnx_lstm(x: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX's bidirectional LSTM (spec equations, default activations), float64:
    x (T, in) -> (T, 2H), the forward then the reverse direction's hidden states."""
    hidden = r.shape[2]
    outputs = []
    sigmoid = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    for d, steps in ((0, range(len(x))), (1, range(len(x) - 1, -1, -1))):
        h, c = np.zeros(hidden), np.zeros(hidden)
        wb, rb = b[d, :4 * hidden], b[d, 4 * hidden:]
        out = np.zeros((len(x), hidden))
        for t in steps:
            gates = w[d] @ x[t] + r[d] @ h + wb + rb
            i, o, f, g = (gates[k * hidden:(k + 1) * hidden] for k in range(4))  # ONNX: i, o, f, c
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
            out[t] = h
        outputs.append(out)
    return np.concatenate(outputs, axis=1)


def check_conversion(segmentation_model, embedding_model, folder: str | Path, plda_dir: str | Path,
                     pretrained_onnx: str | Path | None = None, min_samples: int | None = None) -> dict:
    """Prove the converted folder tensor by tensor; raises ConversionError on the first failure.

    * segmentation: every tensor is where speakrs looks for it (names, count per prefix,
      shapes, float32); SincNet, norms and biases bit-identical to pyannote's; each LSTM layer
      run with ONNX's equations on the converted B, W, R equals torch's own `nn.LSTM` layer
      (float64, 1e-10); each MatMul weight times x equals torch's `Linear` minus its bias;
      with `pretrained_onnx` (the pretrained segmentation's float export, made by
      torch.onnx.export), every LSTM and MatMul initializer of that graph equals the
      converted one bit for bit, in the same numeric order;
    * embedding: exactly the 74 names speakrs' loader lists; each folded convolution equals
      torch's convolution then BatchNorm (eval) on random input (1e-4 relative to the
      output's scale); `seg_1` bit-identical;
    * PLDA: the six arrays equal community-1's files exactly, dtypes kept;
    * min_num_samples: pyannote's (`min_samples` when known, else its probe)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and steady under load
    try:
        return _check(segmentation_model, embedding_model, folder, plda_dir, pretrained_onnx, min_samples)
    finally:
        torch.set_num_threads(threads)


def _check(segmentation_model, embedding_model, folder, plda_dir, pretrained_onnx, min_samples) -> dict:
    import torch
    from safetensors.numpy import load_file

    folder = Path(folder)
    seg = load_file(str(folder / SEGMENTATION_FILE))
    emb = load_file(str(folder / EMBEDDING_FILE))
    state = _numpy_state(segmentation_model)
    report: dict = {"segmentation_tensors": len(seg), "embedding_tensors": len(emb)}
    if any(v.dtype != np.float32 for v in (*seg.values(), *emb.values())):
        raise ConversionError("a converted tensor is not float32")
    counts = {p: sum(name.startswith(p) for name in seg) for p in ("onnx::LSTM_", "onnx::MatMul_", "onnx::Div_")}
    if counts != {"onnx::LSTM_": 12, "onnx::MatMul_": 3, "onnx::Div_": 1}:
        raise ConversionError(f"segmentation: generated-name counts {counts}")
    for name, value in state.items():
        if name.startswith("sincnet.") or (name.endswith(".bias") and name.startswith(("linear.", "classifier."))):
            if name not in seg or not np.array_equal(seg[name], value):
                raise ConversionError(f"segmentation: {name} missing or changed")

    def numbered(prefix):
        return [seg[n] for n in sorted((n for n in seg if n.startswith(prefix)), key=lambda n: int(n.rsplit("_", 1)[1]))]

    lstm, matmul = numbered("onnx::LSTM_"), numbered("onnx::MatMul_")
    if not np.array_equal(numbered("onnx::Div_")[0], state["sincnet.conv1d.0.filterbank.n_"] / 2):
        raise ConversionError("segmentation: onnx::Div_ is not n_ / 2")
    rng = np.random.default_rng(0)
    worst = 0.0
    for layer in range(LSTM_LAYERS):
        b, w, r = lstm[3 * layer: 3 * layer + 3]
        x = rng.standard_normal((23, w.shape[2]))
        module = torch.nn.LSTM(w.shape[2], r.shape[2], bidirectional=True, batch_first=True).double()
        with torch.no_grad():
            for suffix_in, suffix_out in (("", "_l0"), ("_reverse", "_l0_reverse")):
                for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    source = torch.from_numpy(state[f"lstm.{kind}_l{layer}{suffix_in}"].astype(np.float64))
                    getattr(module, f"{kind}{suffix_out}").copy_(source)
            expected = module(torch.from_numpy(x)[None])[0][0].numpy()
        got = _onnx_lstm(x, w.astype(np.float64), r.astype(np.float64), b.astype(np.float64))
        error = float(np.abs(got - expected).max())
        worst = max(worst, error)
        if error > 1e-10:
            raise ConversionError(f"segmentation: LSTM layer {layer} in ONNX's gate order differs from torch's by {error:.1e}")
    report["lstm_max_error"] = worst
    for i, layer in enumerate(("linear.0", "linear.1", "classifier")):
        weight = state[f"{layer}.weight"].astype(np.float64)
        x = rng.standard_normal((5, weight.shape[1]))
        if not np.allclose(x @ matmul[i].astype(np.float64), x @ weight.T, rtol=0, atol=1e-12):
            raise ConversionError(f"segmentation: onnx::MatMul #{i} is not {layer}.weight transposed")
    if pretrained_onnx is not None:
        report["pretrained_onnx_tensors_identical"] = _same_as_export(seg, pretrained_onnx)

    expected_names = embedding_inventory()
    if sorted(emb) != expected_names:
        missing, extra = sorted(set(expected_names) - set(emb)), sorted(set(emb) - set(expected_names))
        raise ConversionError(f"embedding: names differ from speakrs' inventory (missing {missing[:2]}, extra {extra[:2]})")
    modules = dict(embedding_model.named_modules())
    worst = 0.0
    for conv, bn in _conv_bn_pairs(_numpy_state(embedding_model)):
        conv_module, bn_module = modules[conv], modules[bn]
        x = torch.from_numpy(rng.standard_normal((1, conv_module.in_channels, 12, 14)).astype(np.float32))
        with torch.no_grad():
            expected = bn_module.eval()(conv_module(x)).numpy()
            got = torch.nn.functional.conv2d(x, torch.from_numpy(emb[f"{conv}.weight"]),
                                             torch.from_numpy(emb[f"{conv}.weight_bias"]),
                                             stride=conv_module.stride, padding=conv_module.padding).numpy()
        error = float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-30))
        worst = max(worst, error)
        if error > 1e-4:
            raise ConversionError(f"embedding: {conv} folded with {bn} differs by {error:.1e} (relative)")
    report["folded_conv_max_relative_error"] = worst
    emb_state = _numpy_state(embedding_model)
    for k in ("weight", "bias"):
        if not np.array_equal(emb[f"resnet.seg_1.{k}"], emb_state[f"resnet.seg_1.{k}"]):
            raise ConversionError(f"embedding: resnet.seg_1.{k} changed")
    for file, value in plda_arrays(plda_dir).items():
        stored = np.load(folder / file)
        if stored.dtype != value.dtype or not np.array_equal(stored, value):
            raise ConversionError(f"PLDA: {file} differs from community-1's")
    samples = (folder / MIN_NUM_SAMPLES_FILE).read_text().strip()
    if samples != str(min_samples if min_samples is not None else min_num_samples(embedding_model)):
        raise ConversionError(f"{MIN_NUM_SAMPLES_FILE}: {samples!r} is not pyannote's min_num_samples")
    report["min_num_samples"] = int(samples)
    return report


def embedding_inventory() -> list[str]:
    """The names speakrs' CPU trunk loader wants, sorted: the stem, two convolutions per
    basic block (3, 4, 6, 3 blocks), a 1x1 shortcut at the first block of stages 2-4,
    each as `.weight` and `.weight_bias`, and `resnet.seg_1`."""
    convs = ["resnet.conv1"]
    for stage, blocks in enumerate((3, 4, 6, 3), start=1):
        for index in range(blocks):
            convs += [f"resnet.layer{stage}.{index}.conv1", f"resnet.layer{stage}.{index}.conv2"]
            if stage > 1 and index == 0:
                convs.append(f"resnet.layer{stage}.{index}.shortcut.0")
    names = [f"{conv}.{kind}" for conv in convs for kind in ("weight", "weight_bias")]
    return sorted(names + ["resnet.seg_1.weight", "resnet.seg_1.bias"])


def _same_as_export(seg: dict[str, np.ndarray], onnx_path: str | Path) -> int:
    """Every LSTM and MatMul initializer of a torch.onnx.export of the same PyanNet equals the
    converted tensor bit for bit, both taken in numeric order; returns how many were compared."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    exported = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    compared = 0
    for prefix in ("onnx::LSTM_", "onnx::MatMul_"):
        def order(names):
            return sorted((n for n in names if n.startswith(prefix)), key=lambda n: int(n.rsplit("_", 1)[1]))

        theirs, ours = order(exported), order(seg)
        if len(theirs) != len(ours):
            raise ConversionError(f"{Path(onnx_path).name}: {len(theirs)} {prefix}* initializers, converted {len(ours)}")
        for a, b in zip(theirs, ours):
            if exported[a].shape != seg[b].shape or not np.array_equal(exported[a].astype(np.float32), seg[b]):
                raise ConversionError(f"{Path(onnx_path).name}: {a} differs from the converted {b}")
            compared += 1
    for name, value in exported.items():  # tensors the export kept under pyannote's names
        if name in seg:
            if not np.array_equal(value.astype(np.float32), seg[name]):
                raise ConversionError(f"{Path(onnx_path).name}: {name} differs from the converted tensor")
            compared += 1
    return compared
