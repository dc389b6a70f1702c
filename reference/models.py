"""Models for the reference side: seeded fixture models, or real pyannote checkpoints.

Fixture models have the real architectures (segmentation-3.0's PyanNet, WeSpeaker
ResNet34) with weights made here by `reference/train_fixtures.py`: seeded, briefly
trained on the bundled recordings so that they react to speech. They are test
fixtures, not pyannote's pretrained models.

Real models load through pyannote's own `Model.from_pretrained`: a Hugging Face id
(with a token) or a local checkpoint file or directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np

from . import pretrained
from .architectures import ModelError, embedding_architecture, segmentation_architecture  # noqa: F401 (re-exported)

FIXTURES = Path(__file__).parent / "fixtures"
SEGMENTATION_FIXTURE = FIXTURES / "segmentation.npz"
EMBEDDING_FIXTURE = FIXTURES / "embedding.npz"

REAL_SEGMENTATION = "pyannote/segmentation-3.0"
REAL_EMBEDDING = "pyannote/wespeaker-voxceleb-resnet34-LM"

# seed of the numpy generator that fills the ResNet convolutions the fixture does not store
EMBEDDING_CONV_SEED = 20240801


def seeded_convolutions(model, seed: int = EMBEDDING_CONV_SEED) -> set[str]:
    """Fill every 4-d convolution kernel with He-normal values from numpy's legacy
    RandomState (a stream numpy guarantees across versions and machines).
    Returns the names it filled: those are not stored in the fixture file."""
    import torch

    rng = np.random.RandomState(seed)
    filled = set()
    state = model.state_dict()
    with torch.no_grad():
        for name in sorted(state):
            tensor = state[name]
            if name.endswith("weight") and tensor.ndim == 4:
                fan_in = int(np.prod(tensor.shape[1:]))
                values = rng.standard_normal(tuple(tensor.shape)) * np.sqrt(2.0 / fan_in)
                tensor.copy_(torch.from_numpy(values.astype(np.float32)))
                filled.add(name)
    return filled


def save_fixture(model, path: Path, meta: dict, skip: set[str] = frozenset()) -> None:
    """Write a fixture: float16 for large tensors (they *are* the fixture values),
    float32 for small ones (norm statistics, biases), minus the seeded names."""
    arrays = {}
    for name, tensor in model.state_dict().items():
        if name in skip or name.endswith("num_batches_tracked"):
            continue
        value = tensor.detach().cpu().numpy()
        arrays[name] = value.astype(np.float16 if value.size > 4096 else np.float32)
    arrays["__meta__"] = np.array(json.dumps(meta, sort_keys=True))
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def _load_fixture_into(model, path: Path) -> dict:
    import torch

    if not path.is_file():
        raise ModelError(f"fixture weights missing: {path} (run reference/train_fixtures.py)")
    with np.load(path) as data:
        meta = json.loads(str(data["__meta__"]))
        stored = {k: torch.from_numpy(data[k].astype(np.float32)) for k in data.files if k != "__meta__"}
    state = model.state_dict()
    unknown = set(stored) - set(state)
    if unknown:
        raise ModelError(f"fixture {path.name} does not match the architecture: {sorted(unknown)[:3]}")
    with torch.no_grad():
        for name, value in stored.items():
            state[name].copy_(value)
    return meta


def fixture_segmentation():
    """segmentation-3.0 architecture with the committed fixture weights."""
    model = segmentation_architecture()
    _load_fixture_into(model, SEGMENTATION_FIXTURE)
    return model.eval()


def fixture_embedding():
    """WeSpeaker ResNet34 with seeded convolutions and the committed trained weights."""
    model = embedding_architecture()
    seeded_convolutions(model)
    _load_fixture_into(model, EMBEDDING_FIXTURE)
    return model.eval()


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def load_pretrained(checkpoint: str, token: str | None = None):
    """A real model through pyannote's `Model.from_pretrained` (local file/dir or hub id)."""
    from pyannote.audio import Model

    token = token or os.environ.get("HF_TOKEN") or None
    local = Path(checkpoint).expanduser()
    if local.exists():
        try:
            model = Model.from_pretrained(str(local), strict=False)
        except Exception as error:  # torch/lightning raise many kinds here
            raise ModelError(f"unreadable model checkpoint {checkpoint}: {_first_line(error)}") from None
        if model is None:
            raise ModelError(f"unreadable model checkpoint {checkpoint}")
        return model.eval()
    check_source("checkpoint", checkpoint)
    try:
        model = Model.from_pretrained(checkpoint, token=token)
    except Exception as error:
        model, reason = None, _first_line(error)
    else:
        reason = "download returned nothing"
    if model is None:
        raise ModelError(
            f"could not fetch {checkpoint} from the Hugging Face hub ({reason}); it needs the network "
            f"and a token (HF_TOKEN or --token) that accepted the model's conditions"
        )
    return model.eval()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:200]


def check_source(kind: str, which: str) -> None:
    """The ModelError `load` would raise for a model that cannot be had (a missing file, a
    name that is neither a path nor a hub id), found without importing torch."""
    if which == "fixture" or (kind == "segmentation" and which == "pretrained"):
        return
    if kind == "embedding" and which == "pretrained":
        raise ModelError("no pretrained embedding can be had here: give a checkpoint or a hub id")
    if kind == "segmentation" and str(which).endswith(".onnx"):
        if not Path(which).is_file():
            raise ModelError(f"model not found: {which}")
        return
    if not Path(which).expanduser().exists() and not _HUB_ID.match(which):
        raise ModelError(f"model not found: {which} is neither a file, a directory nor a Hugging Face id")


def load(kind: str, which: str = "fixture", token: str | None = None):
    """kind: "segmentation" or "embedding"; which: "fixture", a hub id, a local path, or
    (segmentation) "pretrained" (pyannote's float segmentation-3.0, rebuilt exactly from
    reference/pretrained/), its float ONNX, or its int8 ONNX export (rebuilt by dequantizing)."""
    check_source(kind, which)
    if which == "fixture":
        return fixture_segmentation() if kind == "segmentation" else fixture_embedding()
    if kind == "segmentation" and which == "pretrained":
        return pretrained.segmentation_from_float()
    if kind == "segmentation" and str(which).endswith(".onnx"):
        if pretrained.is_int8_segmentation(which):
            return pretrained.segmentation_from_int8(which)
        if pretrained.is_float_segmentation(which):
            return pretrained.segmentation_from_float(which)
        raise ModelError(f"{which}: not a segmentation-3.0 ONNX (give a checkpoint, the float or the int8 export)")
    return load_pretrained(which, token=token)


def source_sha256(kind: str, which: str | None) -> str | None:
    """sha256 of the file a model was rebuilt from ("pretrained" or an ONNX path), for manifests."""
    if kind != "segmentation" or which is None:
        return None
    if which == "pretrained":
        return pretrained.sha256_file(pretrained.SEGMENTATION_FLOAT)
    if str(which).endswith(".onnx") and Path(which).is_file():
        return pretrained.sha256_file(which)
    return None


def describe(kind: str, which: str | None, models: str = "fixture") -> str:
    """What ran, in words, for headings and manifests."""
    if which is None:
        which = (REAL_SEGMENTATION if kind == "segmentation" else REAL_EMBEDDING) if models == "real" else "fixture"
    if which == "fixture":
        return "fixture (test weights made here)"
    if kind == "segmentation" and which == "pretrained":
        which = str(pretrained.SEGMENTATION_FLOAT)
    if kind == "segmentation" and str(which).endswith(".onnx"):
        how = "dequantized" if pretrained.is_int8_segmentation(which) else "exact"
        return (f"pyannote/segmentation-3.0 pretrained, float ({how}), rebuilt from {Path(which).name} "
                f"(sha256 {pretrained.sha256_file(which)[:12]})")
    return str(which)


def save_checkpoint(model, path: str | Path) -> Path:
    """Write a pyannote-loadable checkpoint (what `Model.from_pretrained` reads)."""
    import lightning
    import torch

    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    model.on_save_checkpoint(checkpoint)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)
    return path


def checksum(model) -> str:
    """sha256 over the state dict (names, shapes, float32 bytes), sorted by name."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().numpy()
        digest.update(name.encode())
        digest.update(str(value.shape).encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()
