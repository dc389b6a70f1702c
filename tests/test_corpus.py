"""Corpus runs (issue 10): inputs as files, folders and lists, unique keys, -j N,
a Dask cluster, the summary and report.json; `python -m port` keeps every result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"


def test_keys_keep_equal_stems_apart_and_readable(tmp_path):
    from port.inputs import keys

    assert keys(["a/x.flac", "b/x.wav", "c/y.wav"]) == ["a-x", "b-x", "y"]
    assert keys(["a/x.flac", "a/x.wav"]) == ["x.flac", "x.wav"]
    assert keys(["p/a/x.wav", "q/a/x.wav"]) == ["p-a-x", "q-a-x"]


def test_inputs_expand_folders_and_lists(tmp_path):
    from port.audio import AudioError
    from port.inputs import expand

    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / "a" / "deep" / "x.wav").write_bytes(b"")
    (tmp_path / "a" / "notes.md").write_text("not audio")
    (tmp_path / "b.flac").write_bytes(b"")
    (tmp_path / "list.txt").write_text("# corpus\nb.flac\n\na/deep/x.wav\n")
    assert expand([tmp_path / "a"]) == [tmp_path / "a" / "deep" / "x.wav"]
    assert expand([tmp_path / "list.txt"]) == [tmp_path / "b.flac", tmp_path / "a" / "deep" / "x.wav"]
    assert len(expand([tmp_path / "list.txt", tmp_path / "a"])) == 2  # no repeats
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudioError, match="directory holds no audio"):
        expand([tmp_path / "empty"])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """a/x.flac and b/x.wav: two short recordings with the same stem."""
    root = tmp_path_factory.mktemp("corpus")
    waveform, rate = sf.read(DATA / "test_16k.wav", dtype="int16")
    (root / "a").mkdir()
    (root / "b").mkdir()
    sf.write(root / "a" / "x.flac", waveform[: 12 * rate], rate)
    sf.write(root / "b" / "x.wav", waveform[3 * rate : 15 * rate], rate, subtype="PCM_16")
    return root


@pytest.mark.slow  # two full verify runs with the noise in two processes (90 s); the Dask test runs the corpus path fast
def test_run_folder_with_two_jobs_keeps_both_recordings(corpus, tmp_path):
    report = tmp_path / "R.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "verify.py"), "run", str(corpus), "-j", "2", "--json", str(report),
         "--dumps", str(tmp_path / "dumps")], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    data = json.loads(report.read_text())
    assert sorted(e["name"] for e in data["recordings"]) == ["a-x", "b-x"]
    assert all(e["passed"] and e["rttm"]["identical"] for e in data["recordings"])
    assert data["summary"]["rttm_identical"] == [2, 2]
    assert "RTTM identical 2/2" in result.stdout
    assert (tmp_path / "dumps" / "reference" / "a-x" / "manifest.json").is_file()
    manifest = json.loads((tmp_path / "dumps" / "port" / "a-x" / "manifest.json").read_text())
    assert manifest["decoder"].startswith("soundfile")


@pytest.mark.slow  # a Dask cluster and a full run: about 20 s
def test_dask_local_cluster_runs_the_recordings_where_asked(corpus, tmp_path):
    distributed = pytest.importorskip("distributed")
    import verify

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        code = verify.main(["run", str(corpus / "a" / "x.flac"), "--scheduler", cluster.scheduler_address,
                            "--dumps", str(tmp_path / "dumps"), "--json", str(tmp_path / "R.json")])
    assert code == 0
    data = json.loads((tmp_path / "R.json").read_text())
    assert [e["name"] for e in data["recordings"]] == ["x"] and data["recordings"][0]["rttm"]["identical"]
    assert (tmp_path / "dumps" / "port" / "x" / "manifest.json").is_file()


def test_port_cli_writes_one_rttm_per_recording(onnx_folder, corpus, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "port", str(corpus / "a" / "x.flac"), str(corpus / "b" / "x.wav"), "--rttm",
         str(tmp_path / "out"), "--models", str(onnx_folder), "--device", "cpu", "--quiet"],
        capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a-x.rttm", "b-x.rttm"]
