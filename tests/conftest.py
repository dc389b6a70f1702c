"""Shared fixtures: fixture models, their ONNX export, and reference/port dumps per recording.

Reference dumps are made once per (recording, speaker options) per test session and
shared by the stage, chain and CLI tests.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network in tests

DATA = Path(__file__).parent / "data"
RECORDINGS = {
    "sample": DATA / "sample.wav",  # pyannote's own sample, 16 kHz, 2 speakers
    "test_16k": DATA / "test_16k.wav",
    "test_with_noise_48k": DATA / "test_with_noise_48k.wav",  # resampled by pyannote
}
# stage and chain parity only (one pyannote run each): edges the three above miss
EDGE_RECORDINGS = {
    "ami_padded": DATA / "ami_padded.wav",  # 23.45 s: the last chunk is zero-padded (log floor of empty frames)
}


@pytest.fixture(scope="session")
def torch_models():
    from reference import models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return models.fixture_segmentation(), models.fixture_embedding()


@pytest.fixture(scope="session")
def onnx_folder(torch_models) -> Path:
    from reference import export

    segmentation, embedding = torch_models
    return export.export(segmentation, embedding)["segmentation"].parent


@pytest.fixture(scope="session")
def onnx_lstm_segmentation(torch_models, tmp_path_factory) -> Path:
    """segmentation.onnx with ONNX Runtime's LSTM op (exporter v2's graph; not cached)."""
    from reference import export

    return export.export_segmentation(torch_models[0], tmp_path_factory.mktemp("onnxlstm") / "segmentation.onnx",
                                      exact_lstm=False)


@pytest.fixture(scope="session")
def port_pipeline(onnx_folder):
    """The port in the 3.1 configuration (the suite's long-standing parity runs)."""
    from port.pipeline import Parameters, Pipeline

    return Pipeline.from_folder(onnx_folder, device="cpu", parameters=Parameters(pipeline="3.1"))


@pytest.fixture(scope="session")
def reference_pipeline(torch_models):
    from port.pipeline import Parameters
    from reference.run import build_pipeline

    segmentation, embedding = torch_models
    return build_pipeline(segmentation, embedding, Parameters(pipeline="3.1"))


@pytest.fixture(scope="session")
def port_pipeline_c1(onnx_folder):
    """The port in community-1's configuration (VBxClustering, the real PLDA)."""
    from port.pipeline import Parameters, Pipeline

    return Pipeline.from_folder(onnx_folder, device="cpu", parameters=Parameters(pipeline="community-1"))


@pytest.fixture(scope="session")
def reference_pipeline_c1(torch_models):
    from port.pipeline import Parameters
    from reference.run import build_pipeline

    segmentation, embedding = torch_models
    return build_pipeline(segmentation, embedding, Parameters(pipeline="community-1"))


class Dumps:
    """Reference and port dumps of one recording, made on first use."""

    def __init__(self, root: Path, reference_pipeline, port_pipeline, torch_models):
        self.root = root
        self.reference_pipeline = reference_pipeline
        self.port_pipeline = port_pipeline
        self.torch_models = torch_models
        self.cache: dict = {}

    def __call__(self, recording: str | Path, **speakers):
        """`recording`: a name of RECORDINGS or a path to any audio file."""
        key = (str(recording), tuple(sorted(speakers.items())))
        if key not in self.cache:
            self.cache[key] = self._make(recording, speakers)
        return self.cache[key]

    def _make(self, recording: str | Path, speakers: dict):
        from port.dumps import DumpWriter
        from reference import models
        from reference import run as reference_run

        known = {**RECORDINGS, **EDGE_RECORDINGS}
        path = known[recording] if recording in known else Path(recording)
        recording = path.stem
        tag = "-".join(f"{k}{v}" for k, v in sorted(speakers.items()) if v is not None)
        root = self.root / (tag or "default")
        manifest = {
            "uri": path.stem,
            "audio_sha256": reference_run.sha256_file(path),
            "segmentation_sha256": models.checksum(self.torch_models[0]),
            "embedding_sha256": models.checksum(self.torch_models[1]),
            "pipeline": self.port_pipeline.parameters.pipeline,
            **speakers,
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with DumpWriter(root, "reference", recording) as writer:
                reference = reference_run.run(path, self.reference_pipeline, hook=writer, **speakers)
                writer.commit(manifest)
        with DumpWriter(root, "port", recording) as writer:
            port = self.port_pipeline(path, hook=writer, **speakers)
            writer.commit(manifest)
        return {
            "reference": root / "reference" / recording,
            "port": root / "port" / recording,
            "reference_result": reference,
            "port_result": port,
        }


@pytest.fixture(scope="session")
def dumps(tmp_path_factory, reference_pipeline, port_pipeline, torch_models) -> Dumps:
    """3.1 dumps of a recording, made once per session."""
    return Dumps(tmp_path_factory.mktemp("dumps"), reference_pipeline, port_pipeline, torch_models)


@pytest.fixture(scope="session")
def dumps_c1(tmp_path_factory, reference_pipeline_c1, port_pipeline_c1, torch_models) -> Dumps:
    """community-1 dumps of a recording, made once per session."""
    return Dumps(tmp_path_factory.mktemp("dumps-c1"), reference_pipeline_c1, port_pipeline_c1, torch_models)


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.slow` tests run only when asked for (`-m slow`); `@pytest.mark.gpu` tests
    need a CUDA device (for ONNX Runtime and torch): skipped without one."""
    if "slow" not in (config.getoption("markexpr") or ""):
        skip_slow = pytest.mark.skip(reason="slow: run with -m slow")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip_slow)
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    from port import runtime

    try:
        runtime.resolve("cuda")
    except runtime.ModelError as error:
        skip = pytest.mark.skip(reason=str(error))
        for item in gpu_items:
            item.add_marker(skip)
