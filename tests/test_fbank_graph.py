"""fbank.onnx (reference/fbank_graph.py) judged as the numpy fbank is: stage 06 against
pyannote's own compute_fbank within pyannote's own float32 noise, through the verdict's
rule (harness.compare.compare_values with the noise measured here, as reference/noise.py
measures it: the fixture WeSpeaker in float64 on the same crops). Then the port with
`fbank="graph"`: the IOBinding chain (crops -> fbank -> trunk -> head, intermediates on
the device; here the CPU provider) bit for bit the unfused sessions, the RTTM identical.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from port import audio, device_fbank, runtime  # noqa: E402
from port import fbank as kaldi  # noqa: E402
from harness.compare import compare_values  # noqa: E402

DATA = Path(__file__).parent / "data"
# every recording in tests/data: 16 kHz, 48 kHz (resampled), 8 kHz (empty upper bands),
# stereo (downmixed), a zero-padded last chunk, and the two AMI excerpts
GRAPH_RECORDINGS = ["sample", "test_16k", "test_with_noise_48k", "ami_8k", "ami_stereo", "ami_padded",
                    "ami_trn03", "ami_trn08"]
MAX_CHUNKS = 12  # evenly spaced, first and last included


def _crops(name: str) -> np.ndarray:
    native, rate = audio.load(DATA / f"{name}.wav")
    duration = native.shape[1] / rate
    starts = np.arange(0.0, max(duration - 10.0, 0.0) + 1e-9, 1.0)  # the pipeline's chunks, step 1 s
    index = np.unique(np.linspace(0, len(starts) - 1, min(MAX_CHUNKS, len(starts))).round().astype(int))
    return audio.crop_chunks(native, rate, starts[index], 10.0, 16000)


@pytest.fixture(scope="module")
def wespeaker(torch_models):
    embedding = torch_models[1].eval()
    return embedding, copy.deepcopy(embedding).double()


@pytest.fixture(scope="module")
def graph(onnx_folder):
    return device_fbank.FbankGraph(onnx_folder, device="cpu")


def test_export_writes_the_graph_with_metadata(onnx_folder, torch_models):
    """The export folder holds fbank.onnx with the pyannote_port metadata the other graphs
    carry, built for the model's own fbank options."""
    from reference import models

    sess = runtime.session(onnx_folder / "fbank.onnx", device="cpu")
    meta = runtime.metadata(sess)
    embedding = torch_models[1]
    assert meta["kind"] == "fbank" and meta["precision"] == "float64"
    assert meta["source_sha256"] == models.checksum(embedding)
    assert meta["fbank"] == {k: embedding.hparams[k] for k in kaldi.WESPEAKER_HPARAMS}
    trunk_meta = runtime.metadata(runtime.session(onnx_folder / "embedding-trunk.onnx", device="cpu"))
    assert meta["exporter"] == trunk_meta["exporter"]


@pytest.mark.parametrize("recording", GRAPH_RECORDINGS)
def test_graph_within_pyannotes_noise(wespeaker, graph, recording):
    """Stage 06 (out_fbank) of the graph against pyannote's float32 compute_fbank, under
    the verdict's rule: drift <= k x noise + floor at the max and the p99, noise being
    pyannote's float32 compute_fbank against the same in float64."""
    embedding, embedding64 = wespeaker
    crops = _crops(recording)
    with torch.inference_mode():
        expected = embedding.compute_fbank(torch.from_numpy(crops)).numpy()
        exact = embedding64.compute_fbank(torch.from_numpy(crops.astype(np.float64))).numpy()
    error = np.abs(expected.astype(np.float64) - exact)
    noise = {"max": float(error.max()), "p99": float(np.percentile(error, 99))}
    got = graph(crops)
    assert got.dtype == np.float32 and got.shape == expected.shape
    row = compare_values("06-fbank", "out_fbank", expected, got, chain=False, noise=noise)
    assert row.passed, f"{recording}: {row.note} (max {row.max_abs:.3g}, noise {noise['max']:.3g}, bound {row.bound:g})"
    assert row.noise_ratio is not None and row.noise_ratio < 3.0


def test_zero_padded_frames_give_torchs_log_floor(wespeaker, graph):
    """All-zero frames (a zero-padded chunk tail) hit the log(eps) floor: an all-zero chunk
    is log(eps) minus its float32 mean over time, within 2 ulps of |log(eps)| of pyannote's."""
    zeros = np.zeros((2, 1, 160000), dtype=np.float32)
    with torch.inference_mode():
        expected = wespeaker[0].compute_fbank(torch.from_numpy(zeros)).numpy()
    got = graph(zeros)
    assert np.max(np.abs(got - expected)) <= 2 * abs(np.spacing(np.float32(np.log(np.finfo(np.float32).eps))))


def test_graph_any_length_and_channels(graph):
    """Framing is computed in the graph from the input length (snip_edges), and channel 0
    is read as kaldi.fbank(channel=-1) does; the numpy fbank agrees closely."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 2, 20_123)) * 0.1).astype(np.float32)
    got = graph(x)
    want = kaldi.compute_fbank(x)
    assert got.shape == want.shape == (3, 1 + (20_123 - 400) // 160, 80)
    assert np.max(np.abs(got - want)) < 1e-4


def test_backend_choice(onnx_folder, tmp_path):
    assert device_fbank.resolve("auto", "cpu", onnx_folder)[0] == "numpy"
    assert device_fbank.resolve("graph", "cpu", onnx_folder)[0] == "graph"
    assert device_fbank.resolve("numpy", "cpu", onnx_folder)[0] == "numpy"
    with pytest.raises(runtime.ModelError, match="fbank.onnx is missing"):
        device_fbank.resolve("graph", "cpu", tmp_path)
    with pytest.raises(ValueError):
        device_fbank.resolve("torch", "cpu", onnx_folder)


def test_device_chain_is_the_unfused_path_bit_for_bit(onnx_folder):
    """crops -> fbank -> trunk -> head through IOBinding gives, on the CPU provider, exactly
    the graph fbank, trunk and head run one after the other through the host."""
    from port.embedding import Embedding

    embedding = Embedding(onnx_folder, device="cpu", fbank="graph")
    assert embedding.chain is not None
    crops = _crops("sample")[:4]
    rng = np.random.default_rng(1)
    weights = (rng.random((4, embedding.num_speakers, 589)) > 0.4).astype(np.float32)
    fused, features = embedding.chain(crops, weights, keep_fbank=True)
    host_fbank = embedding.fbank(crops)
    assert np.array_equal(features, host_fbank)
    assert np.array_equal(fused, embedding(host_fbank, weights))
    _, none = embedding.chain(crops, weights)
    assert none is None


def test_pipeline_with_the_graph(onnx_folder, port_pipeline):
    """The port with fbank="graph" gives the numpy port's RTTM (which the stage tests hold
    to pyannote's) on a recording with a zero-padded last chunk, and embeddings within
    the stage-08 chain bound."""
    from port.pipeline import Parameters, Pipeline

    graph = Pipeline.from_folder(onnx_folder, device="cpu", fbank="graph", parameters=port_pipeline.parameters)
    assert graph.embedding.fbank_backend == "graph" and port_pipeline.embedding.fbank_backend == "numpy"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = port_pipeline(DATA / "ami_padded.wav")
        b = graph(DATA / "ami_padded.wav")
    assert a.rttm == b.rttm and a.exclusive_rttm == b.exclusive_rttm
    assert np.max(np.abs(a.speaker_embeddings - b.speaker_embeddings)) < 1e-3


def test_cli_fbank_option(onnx_folder, tmp_path):
    from port.__main__ import main

    rttm = tmp_path / "out.rttm"
    assert main([str(DATA / "test_16k.wav"), "--models", str(onnx_folder), "--device", "cpu",
                 "--fbank", "graph", "--quiet", "--rttm", str(rttm)]) == 0
    assert rttm.read_text().startswith("SPEAKER test_16k")


SLOW_RECORDINGS = ["ami_8k", "test_with_noise_48k", "ami_stereo"]


@pytest.mark.slow
@pytest.mark.parametrize("recording", SLOW_RECORDINGS)
def test_graph_pipeline_verdict(dumps, onnx_folder, torch_models, tmp_path, recording):
    """The whole verdict with fbank="graph": the port's dumps against pyannote's, with
    pyannote's noise measured (reference/noise.py), stage 06 isolated and chained, every
    stage passing and the RTTM identical."""
    from harness.compare import judge
    from port.dumps import DumpReader, DumpWriter
    from port.pipeline import Parameters, Pipeline
    from port.stages import runner
    from reference import noise as reference_noise

    path = DATA / f"{recording}.wav"
    made = dumps(path)  # the 3.1 dumps
    pipeline = Pipeline.from_folder(onnx_folder, device="cpu", fbank="graph", parameters=Parameters(pipeline="3.1"))
    manifest = json.loads((made["port"] / "manifest.json").read_text())
    with DumpWriter(tmp_path, "port", path.stem) as writer:
        result = pipeline(path, hook=writer)
        writer.commit({k: manifest[k] for k in ("uri", "audio_sha256", "segmentation_sha256", "embedding_sha256",
                                                "pipeline")})
    candidate = tmp_path / "port" / path.stem
    reference_noise.ensure(made["reference"], *torch_models, candidate_dir=candidate)
    verdict = judge(made["reference"], candidate, runner=runner(pipeline))
    assert verdict.passed, verdict.first_failure
    assert verdict.stages["06-fbank"].status == "pass" and verdict.stages["06-fbank"].isolated
    assert result.rttm == made["reference_result"].rttm
    assert DumpReader(candidate).names("06-fbank")
