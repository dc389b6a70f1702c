"""Fixture models (real architectures, committed weights) and the real loading path."""

from __future__ import annotations

import numpy as np
import pytest

from reference import models


def test_fixture_architectures(torch_models):
    segmentation, embedding = torch_models
    assert sum(p.numel() for p in segmentation.parameters()) == 1_473_265
    assert sum(p.numel() for p in embedding.parameters()) == 6_634_336
    assert segmentation.specifications.powerset and len(segmentation.specifications.classes) == 3
    assert embedding.dimension == 256 and embedding.hparams.window_type == "hamming"


def test_fixture_loading_is_deterministic(torch_models):
    assert models.checksum(models.fixture_segmentation()) == models.checksum(torch_models[0])
    assert models.checksum(models.fixture_embedding()) == models.checksum(torch_models[1])


def test_fixture_segmentation_reacts_to_speech(torch_models):
    """Seeded random weights give one powerset class everywhere; the fixture must not."""
    import soundfile as sf
    import torch

    waveform, _ = sf.read("tests/data/sample.wav", dtype="float32")
    chunks = torch.from_numpy(np.stack([waveform[s : s + 160000] for s in (0, 80000, 160000, 240000)]))[:, None]
    with torch.inference_mode():
        classes = torch_models[0](chunks).argmax(dim=-1).numpy()
    assert len(np.unique(classes)) >= 3


def test_local_checkpoint_loads_through_from_pretrained(tmp_path, torch_models):
    """The real-model route (pyannote's Model.from_pretrained) on a checkpoint saved here."""
    for model in torch_models:
        path = models.save_checkpoint(model, tmp_path / f"{type(model).__name__}.ckpt")
        loaded = models.load("segmentation", str(path))
        assert type(loaded) is type(model)
        assert models.checksum(loaded) == models.checksum(model)
    # a directory holding pytorch_model.bin is the other local form
    folder = tmp_path / "folder"
    folder.mkdir()
    models.save_checkpoint(torch_models[0], folder / "pytorch_model.bin")
    assert models.checksum(models.load("segmentation", str(folder))) == models.checksum(torch_models[0])


def test_unreadable_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(models.ModelError) as error:
        models.load("segmentation", str(bad))
    assert "unreadable model checkpoint" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(models.ModelError, match="model not found"):
        models.load("embedding", str(tmp_path / "missing" / "model.ckpt"))


def test_hub_route_names_token_and_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelError) as error:
        models.load("segmentation", models.REAL_SEGMENTATION, token="hf_fake")
    message = str(error.value)
    assert "network" in message and "token" in message and "\n" not in message
