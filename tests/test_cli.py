"""verify.py as users meet it: one-line errors with exit 2, clean, compare's exit codes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from port.dumps import write_text_array

REPO = Path(__file__).resolve().parent.parent


def verify(*args, cwd=REPO):
    return subprocess.run([sys.executable, str(REPO / "verify.py"), *map(str, args)], capture_output=True, text=True, cwd=cwd)


def _one_line_error(result):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def test_run_bad_inputs_are_one_line(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("this is not audio\n" * 100)
    assert "not found" in _one_line_error(verify("run", tmp_path / "missing.wav", "--dumps", tmp_path / "d"))
    assert "empty" in _one_line_error(verify("run", tmp_path / "empty.wav", "--dumps", tmp_path / "d"))
    assert "not" in _one_line_error(verify("run", tmp_path / "text.wav", "--dumps", tmp_path / "d"))
    (tmp_path / "nothing").mkdir()  # a folder is searched for audio files: this one holds none
    assert "directory" in _one_line_error(verify("run", tmp_path / "nothing", "--dumps", tmp_path / "d"))
    line = _one_line_error(verify("run", REPO / "tests/data/test_16k.wav", "--segmentation", tmp_path / "nope.ckpt",
                                  "--dumps", tmp_path / "d"))
    assert "model not found" in line
    (tmp_path / "bad.ckpt").write_bytes(b"garbage")
    assert "unreadable model checkpoint" in _one_line_error(
        verify("run", REPO / "tests/data/test_16k.wav", "--embedding", tmp_path / "bad.ckpt", "--dumps", tmp_path / "d"))
    assert not (tmp_path / "d" / "reference").exists()


def test_clean_leaves_only_the_readme(tmp_path):
    root = tmp_path / "dumps"
    (root / "reference" / "rec" / "01-audio").mkdir(parents=True)
    (root / "reference" / "rec" / "01-audio" / "out_waveform.npy").write_bytes(b"x")
    (root / "report.json").write_text("{}")
    (root / "README.md").write_text("keep me")
    (tmp_path / "outside.txt").write_text("untouched")
    result = verify("clean", "--dumps", root)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in root.iterdir()) == ["README.md"]
    assert (root / "README.md").read_text() == "keep me" and (tmp_path / "outside.txt").read_text() == "untouched"


def _as_text_dump(source: Path, target: Path) -> None:
    """What a port in another language writes: the same tree, .txt arrays."""
    for file in source.rglob("*"):
        out = target / file.relative_to(source)
        if file.is_dir():
            out.mkdir(parents=True, exist_ok=True)
        elif file.suffix == ".npy":
            out.parent.mkdir(parents=True, exist_ok=True)
            write_text_array(out.with_suffix(".txt"), np.load(file))
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(file, out)


def test_compare_reads_text_dumps_and_fails_at_the_first_drifting_stage(dumps, tmp_path):
    made = dumps("test_16k")
    candidate = tmp_path / "cpp" / "test_16k"
    _as_text_dump(made["port"], candidate)
    ok = verify("compare", made["reference"], candidate, "--json", tmp_path / "ok.json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # a port whose fbank drifts by 1e-3: compare must name 06-fbank and exit 1
    fbank = candidate / "06-fbank" / "out_fbank.txt"
    from port.dumps import read_text_array

    write_text_array(fbank, read_text_array(fbank) + np.float32(1e-3))
    bad = verify("compare", made["reference"], candidate)
    assert bad.returncode == 1
    assert "first stage over tolerance: 06-fbank" in bad.stdout
    # dumps of other audio are refused, not compared
    manifest = candidate / "manifest.json"
    manifest.write_text(manifest.read_text().replace(made["reference"].parent.name, "x").replace('"audio_sha256": "', '"audio_sha256": "0'))
    assert "stale dump" in _one_line_error(verify("compare", made["reference"], candidate))


@pytest.mark.parametrize("argv, exact", [(["export"], True), (["export", "--onnx-lstm"], False),
                                         (["run", "--onnx-lstm"], False)])
def test_onnx_lstm_option_selects_the_export(monkeypatch, argv, exact):
    """`--onnx-lstm` (run and export) asks the exporter for v2's graph (ONNX Runtime's LSTM
    op); without it the exact LSTM, exporter v3's default."""
    import verify as cli
    from reference import export

    asked = {}

    def fake_export(segmentation, embedding, out, exact_lstm=True):
        asked["exact_lstm"] = exact_lstm
        return {"segmentation": Path(out) / "x" / "segmentation.onnx"}

    monkeypatch.setattr(export, "export", fake_export)
    args = cli.parser().parse_args(argv)
    cli.export_models(args, None, None)
    assert asked == {"exact_lstm": exact}


def test_a_command_this_installation_cannot_run_is_one_line_and_exit_2(monkeypatch, capsys):
    """What the judge installed alone meets on `run`: an ImportError becomes one line, exit 2."""
    import verify as cli

    def needs_the_port(args):
        raise ImportError("cannot import name 'audio' from 'port' (/site-packages/port/__init__.py)", name="port")

    monkeypatch.setattr(cli, "command_clean", needs_the_port)  # parser() binds it when called
    assert cli.main(["clean", "--dumps", "nowhere"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: this command needs port.audio"), err
