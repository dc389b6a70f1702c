"""`--report`: one self-contained HTML page per recording, with its figures, that a browser renders."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import report

REPO = Path(__file__).resolve().parent.parent


def _candidate_with_a_wrong_turn(port: Path, out: Path) -> Path:
    """The port's dump with its first diarization turn starting 0.5 s late and one embedding off by 0.1."""
    shutil.copytree(port, out)
    rttm = out / "14-annotation" / "out_diarization.rttm"
    lines = rttm.read_text().splitlines(keepends=True)
    fields = lines[0].split(" ")
    fields[3], fields[4] = f"{float(fields[3]) + 0.5:.3f}", f"{float(fields[4]) - 0.5:.3f}"  # same end
    rttm.write_text(" ".join(fields) + "".join(lines[1:]))
    embeddings = np.load(out / "08-embeddings" / "out_embeddings.npy")
    embeddings[1, 0] += np.float32(0.1)
    np.save(out / "08-embeddings" / "out_embeddings.npy", embeddings)
    return out


def test_compare_report_page_holds_its_figures_and_renders(dumps, tmp_path):
    made = dumps("test_16k")
    candidate = _candidate_with_a_wrong_turn(made["port"], tmp_path / "port" / made["port"].name)
    page = tmp_path / "report.html"
    result = subprocess.run([sys.executable, str(REPO / "verify.py"), "compare", str(made["reference"]), str(candidate),
                             "--report", str(page)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 1, result.stdout + result.stderr  # the shifted embedding drifts
    text = page.read_text()
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(images) == 3  # drift over time, diarizations, worst chunk
    for image in images:
        assert base64.b64decode(image)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "src='http" not in text and "<script" not in text  # self-contained
    assert re.search(r"1 span\(s\), 0\.50 s in all, where the active speakers differ", text), "turn shift not found"
    assert re.search(r"<td>(FAIL|fail)</td>", text)  # the verdict column carries compare's result

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed: the page was not rendered in a browser")
    shot = tmp_path / "page.png"
    rendered = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                               "--window-size=1400,2400", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.is_file(), rendered.stderr
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    colourful = np.count_nonzero(np.ptp(pixels, axis=-1) > 0.2)  # red/blue plot ink, not grey text
    assert colourful > 5000, f"only {colourful} coloured pixels: the figures did not render"


def test_pyannotes_noise_is_drawn_beside_the_drift_when_stored(dumps, tmp_path):
    """noise.json (reference/noise.py's, beside the reference's manifest): per-chunk noise drawn."""
    made = dumps("test_16k")
    reference = tmp_path / "reference" / made["reference"].name
    shutil.copytree(made["reference"], reference)
    manifest = json.loads((reference / "manifest.json").read_text())
    per_chunk = {"max": 3e-4, "p99": 1e-4, "per_chunk_max": [1e-4, 3e-4]}
    (reference / "noise.json").write_text(json.dumps({
        **{k: manifest[k] for k in ("audio_sha256", "segmentation_sha256", "embedding_sha256")},
        "chunks": [0, 2], "stages": {"03-segmentation": {"chain": {"out_log_probs": per_chunk}}},
    }))
    text = html.unescape(report.write(tmp_path / "noise.html", reference, made["port"]).read_text())
    assert "pyannote's own noise drawn for: 03-segmentation/out_log_probs (per chunk)" in text
    (reference / "noise.json").write_text(json.dumps({"audio_sha256": "other", "stages": {}}))
    text = html.unescape(report.write(tmp_path / "stale.html", reference, made["port"]).read_text())
    assert "noise.json was measured on other audio: not drawn" in text


def test_page_per_recording_when_several():
    assert report.page_path("out/report.html", "sample", several=False) == Path("out/report.html")
    assert report.page_path("out/report.html", "sample", several=True) == Path("out/report-sample.html")


def test_diarization_differences_are_the_spans_where_speakers_differ():
    ref = [(0.0, 2.0, "A"), (3.0, 4.0, "B")]
    cand = [(0.0, 2.5, "A"), (3.0, 4.0, "B")]
    spans = report.diarization_differences(ref, cand)
    assert len(spans) == 1 and spans[0][0] == pytest.approx(2.0, abs=0.011) and spans[0][1] == pytest.approx(2.5, abs=0.011)
    assert report.diarization_differences(ref, ref) == []
