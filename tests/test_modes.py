"""Precision modes: `exact` untouched, `fast` named and measured (port/runtime.py,
reference/export.py: ensure_fast, verify.py: mode_cost), and the segmentation pieces the
workers share."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from port import runtime
from port.pipeline import Pipeline, split_batch

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "tests" / "data" / "sample.wav"


@pytest.fixture(scope="session")
def fast_folder(torch_models, onnx_folder) -> Path:
    """The fixture export with the fast mode's graphs beside it (derived once, cached)."""
    from reference import export

    export.ensure_fast(onnx_folder, torch_models[0])
    return onnx_folder


@pytest.fixture()
def short(tmp_path) -> Path:
    import soundfile as sf

    data, rate = sf.read(SAMPLE, dtype="float32", frames=12 * 16000)  # 3 chunks
    sf.write(tmp_path / "short.wav", data, rate)
    return tmp_path / "short.wav"


def test_split_batch_never_makes_a_single_chunk_piece():
    """Pieces cover the batch in order, at most one per worker, none of one chunk (a
    batch of one stays one: ONNX Runtime runs it through another GEMM path)."""
    for size in range(1, 40):
        for parts in (1, 2, 3, 8):
            pieces = split_batch(size, parts)
            assert pieces[0][0] == 0 and pieces[-1][1] == size
            assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
            assert len(pieces) <= parts
            assert all(stop - start >= 2 for start, stop in pieces) or pieces == [(0, 1)]
    assert split_batch(16, 2) == [(0, 8), (8, 16)] and split_batch(16, 1) == [(0, 16)]


def test_segmentation_pieces_give_their_batch_bit_for_bit(onnx_folder):
    """What the workers rely on: a chunk's log-probabilities are the same in any batch of
    2 or more chunks (so splitting pyannote's batches changes nothing)."""
    from port.segmentation import Segmentation

    model = Segmentation(onnx_folder / "segmentation.onnx", device="cpu", threads=1)
    rng = np.random.default_rng(0)
    chunks = (0.1 * rng.standard_normal((8, 1, model.num_samples))).astype(np.float32)
    whole = model(chunks)
    for parts in (2, 3, 4):
        pieces = np.concatenate([model(chunks[a:b]) for a, b in split_batch(len(chunks), parts)])
        assert np.array_equal(pieces, whole), parts


def test_exact_is_the_default_and_names_its_formulations(onnx_folder):
    pipeline = Pipeline.from_folder(onnx_folder, device="cpu")
    assert pipeline.precision == "exact" and pipeline.choice == {}
    assert pipeline.segmentation.path == onnx_folder / "segmentation.onnx"
    assert pipeline.formulations == {"segmentation": "exact-lstm", "embedding-trunk": "float32",
                                     "embedding-head": "float32"}
    with pytest.raises(ValueError, match="precision must be"):
        Pipeline.from_folder(onnx_folder, device="cpu", precision="fastest")


def test_fast_graphs_are_derived_and_named(fast_folder):
    """ensure_fast writes the LSTM-op segmentation and the derived trunks beside the
    export, each naming its formulation in its metadata."""
    import onnx

    fast = fast_folder / runtime.FAST_DIR
    seg = onnx.load(str(fast / "segmentation.onnx"))
    assert "LSTM" in {n.op_type for n in seg.graph.node} and "Scan" not in {n.op_type for n in seg.graph.node}
    ops = {}
    for name in ("int8-dynamic", "int8-static", "float16"):
        proto = onnx.load(str(fast / f"embedding-trunk.{name}.onnx"))
        meta = json.loads(next(e.value for e in proto.metadata_props if e.key == "pyannote_port"))
        assert meta["formulation"] == name and meta["kind"] == "embedding-trunk"
        ops[name] = {n.op_type for n in proto.graph.node}
    assert "ConvInteger" in ops["int8-dynamic"] and "QuantizeLinear" in ops["int8-static"]


def test_fast_trunk_is_measured_once_and_kept(fast_folder, tmp_path, monkeypatch):
    """The trunk formulation is the fastest measured, written to choice.json and read
    from it after; $PYANNOTE_PORT_FAST_TRUNK forces one, and an unknown one is one line."""
    import shutil

    folder = tmp_path / "export"
    (folder / "fast").mkdir(parents=True)
    for rel in runtime.TRUNKS["cpu"].values():
        shutil.copy(fast_folder / rel, folder / rel)
    timed = []
    fake = {"float32": 0.2, "int8-dynamic": 0.3, "int8-static": 0.07}
    monkeypatch.setattr(runtime, "_time_trunk", lambda path, *a: timed.append(path.name) or fake[
        next(k for k, v in runtime.TRUNKS["cpu"].items() if Path(v).name == path.name)])
    monkeypatch.delenv(runtime.FAST_TRUNK_ENV, raising=False)
    choice, how = runtime.fast_trunk(folder, "cpu", 1, [998, 80])
    assert choice == "int8-static" and how["ms_per_chunk"] == {"float32": 200.0, "int8-dynamic": 300.0, "int8-static": 70.0}
    assert len(timed) == 3
    stored = json.loads((folder / "fast" / "choice.json").read_text())
    assert [entry["choice"] for entry in stored.values()] == ["int8-static"]
    assert runtime.fast_trunk(folder, "cpu", 1, [998, 80])[0] == "int8-static" and len(timed) == 3  # read, not timed
    monkeypatch.setenv(runtime.FAST_TRUNK_ENV, "float32")
    assert runtime.fast_trunk(folder, "cpu", 1, [998, 80]) == ("float32", {"chosen_by": f"${runtime.FAST_TRUNK_ENV}"})
    monkeypatch.setenv(runtime.FAST_TRUNK_ENV, "bf16")
    with pytest.raises(runtime.ModelError, match="not one of"):
        runtime.fast_trunk(folder, "cpu", 1, [998, 80])


def test_fast_mode_runs_and_says_what_it_ran(fast_folder, short, monkeypatch):
    """The fast pipeline: other graphs than the exact one, the same stages and shapes,
    its formulations named; an export without fast graphs is a one-line ModelError."""
    monkeypatch.setenv(runtime.FAST_TRUNK_ENV, "int8-static")  # no timing in the test
    fast = Pipeline.from_folder(fast_folder, device="cpu", precision="fast")
    assert fast.formulations == {"segmentation": "lstm-op", "embedding-trunk": "int8-static",
                                 "embedding-head": "float32"}
    assert "precision fast" in fast.describe_precision()
    got, want = {}, {}
    fast(short, hook=lambda stage, name, value: got.__setitem__((stage, name), value))
    Pipeline.from_folder(fast_folder, device="cpu")(short, hook=lambda stage, name, value: want.__setitem__((stage, name), value))
    assert got.keys() == want.keys()
    log_probs = ("03-segmentation", "out_log_probs")
    assert got[log_probs].shape == want[log_probs].shape and not np.array_equal(got[log_probs], want[log_probs])
    assert np.array_equal(got[("02-chunks", "out_chunks")], want[("02-chunks", "out_chunks")])
    with pytest.raises(runtime.ModelError, match="no fast graphs"):
        runtime.fast_graphs(short.parent, "cpu", 1, [998, 80])


def test_port_cli_precision_fast(fast_folder, short):
    env = {"PYANNOTE_PORT_FAST_TRUNK": "int8-static", "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "port", str(short), "--models", str(fast_folder), "--device", "cpu",
                          "--precision", "fast"], capture_output=True, text=True, cwd=REPO, env=env)
    assert run.returncode == 0, run.stderr
    assert "precision fast: segmentation lstm-op, embedding-trunk int8-static" in run.stderr
    assert run.stdout.startswith("SPEAKER short 1 ")
    bad = subprocess.run([sys.executable, "-m", "port", str(short), "--precision", "fastest"], capture_output=True,
                         text=True, cwd=REPO, env=env)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


# ----------------------------------------------------------------------------- verify.py's cost
def _verify():
    sys.path.insert(0, str(REPO))
    import verify

    return verify


def _rttm(turns, uri="x"):
    return "".join(f"SPEAKER {uri} 1 {s:.3f} {e - s:.3f} <NA> <NA> {k} <NA> <NA>\n" for s, e, k in turns)


def test_rttm_differences_map_speakers_first():
    """Seconds that differ are counted after the candidate's speakers are mapped onto
    pyannote's (a renaming costs nothing); lines count whatever differs in the text."""
    verify = _verify()
    reference = _rttm([(0.0, 2.0, "SPEAKER_00"), (2.0, 4.0, "SPEAKER_01")])
    renamed = _rttm([(0.0, 2.0, "SPEAKER_01"), (2.0, 4.0, "SPEAKER_00")], uri="y")
    assert verify._seconds_differ(reference, renamed) == (0.0, 4.0)
    assert verify._rttm_line_changes(reference, renamed) == (4, 4)
    assert verify._rttm_line_changes(reference, _rttm([(0.0, 2.0, "SPEAKER_00"), (2.0, 4.0, "SPEAKER_01")], "z")) == (0, 4)
    shifted = _rttm([(0.0, 2.5, "SPEAKER_00"), (2.5, 4.0, "SPEAKER_01"), (5.0, 6.0, "SPEAKER_02")])
    differ, speech = verify._seconds_differ(reference, shifted)
    assert differ == pytest.approx(1.5) and speech == pytest.approx(5.0)  # 2.0-2.5 and the new speaker's 1 s
    assert verify._seconds_differ("", reference) == (4.0, 4.0)


def test_mode_cost_and_its_summary(tmp_path, monkeypatch):
    """mode_cost times both modes in turns and summarises the verdict; cost_summary pools
    seconds, RTTM changes and DER over recordings."""
    from types import SimpleNamespace

    from rich.console import Console

    verify = _verify()
    pyannote = _rttm([(0.0, 2.0, "SPEAKER_00"), (2.0, 4.0, "SPEAKER_01")])
    fast_rttm = _rttm([(0.0, 2.5, "SPEAKER_00"), (2.5, 4.0, "SPEAKER_01")])

    class Fake:
        def __init__(self, precision, rttm):
            self.precision, self.text, self.calls = precision, rttm, 0
            self.formulations = {"segmentation": "lstm-op" if precision == "fast" else "exact-lstm"}
            self.choice = {}

        def __call__(self, path, **speakers):
            self.calls += 1
            return SimpleNamespace(rttm=self.text, num_speakers=2)

    setup = SimpleNamespace(port=Fake("fast", fast_rttm), _exact_port=Fake("exact", pyannote))
    args = SimpleNamespace(num_speakers=None, min_speakers=None, max_speakers=None)
    stage = lambda name, ratio, passed: {"stage": name, "passed": passed, "isolated": [],  # noqa: E731
                                         "chain": [{"noise_ratio": ratio}, {"noise_ratio": None}]}
    entry = {"name": "rec", "audio": str(tmp_path / "rec.wav"), "speakers": {"reference": 2, "port": 2},
             "der": {"reference": None, "port": None}, "der_components": {"reference": None, "port": None},
             "verdict": {"stages": [stage("03-segmentation", 0.5, True), stage("08-embeddings", 40.0, False)]}}
    cost = verify.mode_cost(setup, args, entry, tmp_path / "rec.wav", fast_rttm, pyannote)
    assert setup.port.calls == 2 and setup._exact_port.calls == 2
    assert cost["stages"] == {"03-segmentation": {"noise_ratio": 0.5, "passed": True},
                              "08-embeddings": {"noise_ratio": 40.0, "passed": False}}
    assert cost["rttm"]["lines_differ"] == 4 and cost["rttm"]["seconds_differ"] == pytest.approx(0.5)
    assert cost["rttm"]["exact_identical_to_pyannote"] and cost["rttm"]["exact"]["lines_differ"] == 0
    assert cost["speakers"] == {"pyannote": 2, "exact": 2, "mode": 2} and cost["speed_up"] > 0
    entry["cost"] = cost
    console = Console(record=True, width=200)
    verify._print_cost(console, entry)
    pooled = verify.cost_summary(console, [entry, {**entry, "name": "rec2"}])
    assert pooled["recordings"] == 2 and pooled["rttm"]["lines_differ"] == 8
    assert pooled["stages"]["08-embeddings"]["failed_on"] == ["rec", "rec2"]
    text = console.export_text()
    assert "08-embeddings 40x fails" in text and "pooled" in text and "08-embeddings (2/2)" in text
