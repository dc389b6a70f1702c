"""Each side decodes on its own (issue 10): the port's decoders against torchcodec, the
decoder pyannote.audio 4.0.7 uses on a file path, on every format meetings arrive in."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from port import audio
from harness.compare import tolerances

DATA = Path(__file__).parent / "data"
FORMATS = {  # ffmpeg codec options
    "flac": [], "ogg": ["-c:a", "libvorbis"], "mp3": [], "m4a": ["-c:a", "aac"], "opus": ["-c:a", "libopus"],
}


@pytest.fixture(scope="module")
def encoded(tmp_path_factory) -> dict[str, Path]:
    if not shutil.which("ffmpeg"):
        pytest.skip("no ffmpeg to make the test files")
    root = tmp_path_factory.mktemp("formats")
    files = {"wav": DATA / "ami_stereo.wav"}  # stereo: channels kept apart by both decoders
    for suffix, options in FORMATS.items():
        files[suffix] = root / f"ami_stereo.{suffix}"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(files["wav"]), *options, str(files[suffix])], check=True)
    return files


@pytest.mark.parametrize("suffix", ["wav", "flac", "ogg", "mp3", "m4a", "opus"])
def test_port_decodes_as_torchcodec_does(encoded, suffix):
    from reference.run import pyannote_decoder

    if pyannote_decoder() is None:
        pytest.skip("torchcodec cannot load FFmpeg here")
    from torchcodec.decoders import AudioDecoder

    expected = AudioDecoder(str(encoded[suffix])).get_all_samples()
    waveform, sample_rate = audio.load(encoded[suffix])
    assert sample_rate == expected.sample_rate  # opus: 48 kHz, as FFmpeg decodes it
    assert waveform.shape == tuple(expected.data.shape) and waveform.dtype == np.float32  # priming/padding trimmed alike
    difference = np.abs(waveform - expected.data.numpy()).max()
    if suffix in ("wav", "flac"):
        assert difference == 0 and audio.decoder(encoded[suffix]).startswith("soundfile")
    else:  # FFmpeg 8 (PyAV's) against the system's FFmpeg 5: measured <= 4.5e-8
        assert difference <= tolerances()["01-audio"]["atol"] and audio.decoder(encoded[suffix]).startswith("PyAV")


def test_reference_names_torchcodec_and_dumps_pyannotes_own_decode(encoded, tmp_path, reference_pipeline):
    """pyannote decodes the MP3 itself (preload): its decode is stage 01's in_waveform
    (a 5 s stereo MP3: one pyannote run, one chunk)."""
    import warnings

    from port.dumps import DumpReader, DumpWriter
    from reference import run as reference_run

    decoder = reference_run.pyannote_decoder()
    if decoder is None:
        pytest.skip("torchcodec cannot load FFmpeg here")
    from torchcodec.decoders import AudioDecoder

    mp3 = tmp_path / "ami_stereo_5s.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(DATA / "ami_stereo_5s.wav"), str(mp3)], check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with DumpWriter(tmp_path, "reference", "mp3") as writer:
            result = reference_run.run(mp3, reference_pipeline, hook=writer, max_speakers=1)
            writer.commit({"uri": result.uri})
    assert result.decoder == decoder and decoder.startswith("torchcodec")
    dumped = DumpReader(tmp_path / "reference" / "mp3").load("01-audio", "in_waveform")
    assert dumped.shape[0] == 2  # the channels as decoded, before pyannote's downmix
    np.testing.assert_array_equal(dumped, AudioDecoder(str(mp3)).get_all_samples().data.numpy())
