"""port.audio vs torchaudio.functional.resample and pyannote.audio.core.io.Audio."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch")
torchaudio = pytest.importorskip("torchaudio")

from port import audio  # noqa: E402

DATA = Path(__file__).parent / "data"
FILES = ["test_16k.wav", "test_with_noise_48k.wav", "sample.wav"]
RATE_PAIRS = [
    (48000, 16000),
    (44100, 16000),
    (8000, 16000),
    (22050, 16000),
    (32000, 16000),
    (16000, 16000),
]
ATOL = 1e-6


def _torch_resample(x: np.ndarray, orig: int, new: int) -> np.ndarray:
    return torchaudio.functional.resample(torch.from_numpy(x), orig, new).numpy()


def _read(name: str) -> tuple[np.ndarray, int]:
    data, sr = sf.read(str(DATA / name), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), sr


@pytest.fixture(scope="module")
def recordings():
    return {name: _read(name) for name in FILES}


# ---------------------------------------------------------------------------
# resample
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("orig,new", RATE_PAIRS)
def test_resample_real_speech(recordings, name, orig, new):
    # the samples are reinterpreted as being at `orig` Hz: only the rate pair matters
    x, _ = recordings[name]
    ref = _torch_resample(x, orig, new)
    out = audio.resample(x, orig, new)
    assert out.shape == ref.shape
    assert out.dtype == np.float32
    assert np.abs(out - ref).max() <= ATOL


@pytest.mark.parametrize("orig,new", RATE_PAIRS + [(16000, 8000), (11025, 16000), (16000, 44100)])
@pytest.mark.parametrize("length", [1, 5, 41, 440, 1001, 100003])
def test_resample_random(orig, new, length):
    rng = np.random.default_rng(length + orig)
    x = (rng.uniform(-1, 1, size=(1, length))).astype(np.float32)
    ref = _torch_resample(x, orig, new)
    out = audio.resample(x, orig, new)
    assert out.shape == ref.shape == (1, math.ceil(new * length / orig) if orig != new else length)
    if ref.size:
        assert np.abs(out - ref).max() <= ATOL


@pytest.mark.parametrize("orig,new", [(48000, 16000), (44100, 16000), (8000, 16000)])
def test_resample_multichannel_and_batch_shapes(orig, new):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 3, 12345)) * 0.3).astype(np.float32)
    ref = _torch_resample(x, orig, new)
    out = audio.resample(x, orig, new)
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= ATOL


def test_resample_small_blocks_match_large_blocks(monkeypatch):
    # the blocked convolution must not depend on the block size
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 50001)) * 0.3).astype(np.float32)
    ref = _torch_resample(x, 44100, 16000)
    whole = audio.resample(x, 44100, 16000)
    monkeypatch.setattr(audio, "_BLOCK_ELEMENTS", 1000)
    monkeypatch.setattr(audio, "_MIN_BLOCK_POSITIONS", 7)
    blocked = audio.resample(x, 44100, 16000)
    for orig in (48000, 8000):  # small kernels: many taps rows, blocks of 7 positions
        np.testing.assert_allclose(
            audio.resample(x, orig, 16000), _torch_resample(x, orig, 16000), rtol=0, atol=ATOL
        )
    np.testing.assert_array_equal(whole, blocked)
    assert np.abs(blocked - ref).max() <= ATOL


def test_resample_same_rate_is_identity():
    x = np.random.default_rng(0).standard_normal((1, 100)).astype(np.float32)
    assert audio.resample(x, 16000, 16000) is x


def test_resample_float64_follows_torch():
    # torchaudio computes kernel and convolution in the waveform's dtype
    x = np.random.default_rng(0).standard_normal((1, 9999))
    ref = _torch_resample(x, 48000, 16000)
    out = audio.resample(x, 48000, 16000)
    assert out.dtype == np.float64
    assert np.abs(out - ref).max() <= 1e-12


def test_resample_kernel_matches_torchaudio():
    from torchaudio.functional.functional import _get_sinc_resample_kernel

    for orig, new in [(48000, 16000), (44100, 16000), (8000, 16000), (22050, 16000)]:
        gcd = math.gcd(orig, new)
        ref, ref_width = _get_sinc_resample_kernel(orig, new, gcd, dtype=torch.float32)
        kernel, width = audio._sinc_resample_kernel(orig, new, gcd, dtype=np.float32)
        assert width == ref_width
        assert kernel.shape == ref.shape[::2]
        # torch's float32 sin/cos (SLEEF) is within one ulp of correctly rounded
        assert np.abs(kernel - ref[:, 0].numpy()).max() <= 2.5e-7


def test_resample_bad_rates():
    x = np.zeros((1, 10), dtype=np.float32)
    with pytest.raises(audio.AudioError):
        audio.resample(x, 0, 16000)
    with pytest.raises(audio.AudioError):
        audio.resample(x, 44100.5, 16000)
    with pytest.raises(audio.AudioError):
        audio.resample(np.zeros((1, 10), dtype=np.int16), 8000, 16000)


# ---------------------------------------------------------------------------
# downmix
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5, 6, 8, 17])
@pytest.mark.parametrize("length", [17, 1000, 100003])
def test_downmix_bitwise(channels, length):
    rng = np.random.default_rng(channels * length)
    x = (rng.standard_normal((channels, length)) * 0.3).astype(np.float32)
    ref = torch.from_numpy(x).mean(dim=0, keepdim=True).numpy()
    out = audio.downmix(x)
    assert out.shape == (1, length) and out.dtype == np.float32
    np.testing.assert_array_equal(out, ref)


# ---------------------------------------------------------------------------
# crop / crop_chunks vs pyannote Audio.crop(mode="pad") on a waveform dict
# ---------------------------------------------------------------------------


def _pyannote_crop(x: np.ndarray, sr: int, start: float, end: float) -> np.ndarray:
    from pyannote.audio.core.io import Audio
    from pyannote.core import Segment

    pa = Audio(sample_rate=16000, mono="downmix")
    wav, out_sr = pa.crop(
        {"waveform": torch.from_numpy(x), "sample_rate": sr}, Segment(start, end), mode="pad"
    )
    assert out_sr == 16000
    return wav.numpy()


def _crop_cases(duration_s: float):
    # start at 0, inside, running past the end, ending exactly at the end
    return [
        (0.0, 10.0),
        (1.0, 11.0),
        (0.337, 10.337),
        (duration_s - 4.0, duration_s + 6.0),
        (duration_s - 10.0, duration_s),
        (-0.5, 9.5),
    ]


@pytest.fixture(scope="module")
def stereo_44k(recordings):
    # a synthetic stereo 44.1 kHz waveform built from real speech
    x, _ = recordings["test_16k.wav"]
    left = audio.resample(x, 16000, 44100)[0]
    right = np.roll(left, 1234) * np.float32(0.5)
    return np.stack([left, right]).astype(np.float32), 44100


@pytest.fixture(scope="module")
def six_channels(recordings):
    # 6 channels: ATen's channel-sum order depends on the column's position in the crop
    x, sr = recordings["test_16k.wav"]
    rng = np.random.default_rng(6)
    chans = [np.roll(x[0], 97 * k) * np.float32(rng.uniform(0.2, 1.0)) for k in range(6)]
    return np.stack(chans).astype(np.float32), sr


def _pick(recordings, stereo_44k, six_channels, which):
    if which == "stereo_44k":
        return stereo_44k
    if which == "six_channels":
        return six_channels
    return recordings[which]


@pytest.mark.parametrize(
    "which", ["test_16k.wav", "test_with_noise_48k.wav", "sample.wav", "stereo_44k", "six_channels"]
)
def test_crop_matches_pyannote(recordings, stereo_44k, six_channels, which):
    x, sr = _pick(recordings, stereo_44k, six_channels, which)
    duration = x.shape[1] / sr
    for start, end in _crop_cases(duration):
        ref = _pyannote_crop(x, sr, start, end)
        out = audio.crop(x, sr, start, end)
        assert out.shape == ref.shape, (start, end)
        assert np.abs(out - ref).max() <= ATOL, (start, end)
        if sr == 16000:
            np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("which", ["test_16k.wav", "test_with_noise_48k.wav", "stereo_44k", "six_channels"])
def test_crop_chunks_matches_pyannote(recordings, stereo_44k, six_channels, which):
    x, sr = _pick(recordings, stereo_44k, six_channels, which)
    duration, step = 10.0, 1.0
    num_chunks = math.ceil((x.shape[1] / sr - duration) / step) + 2  # last ones run past the end
    starts = [c * step for c in range(num_chunks)]
    out = audio.crop_chunks(x, sr, starts, duration)
    assert out.shape == (num_chunks, 1, 160000)
    # first, second and the last chunks (which run past the end) are checked
    # against pyannote; resampling 44.1 kHz chunks with torch is slow
    checked = sorted({0, 1, num_chunks - 2, num_chunks - 1})
    for c in checked:
        start = starts[c]
        ref = _pyannote_crop(x, sr, start, start + duration)
        assert np.abs(out[c] - ref).max() <= ATOL, c
        if sr == 16000:
            np.testing.assert_array_equal(out[c], ref)
        # batched and single crop are the same computation
        np.testing.assert_array_equal(out[c], audio.crop(x, sr, start, start + duration))


def test_crop_past_the_end_follows_pyannote(recordings):
    # pyannote quirk: a segment starting after the end gives end - num_samples samples
    x, sr = recordings["test_16k.wav"]
    duration = x.shape[1] / sr
    ref = _pyannote_crop(x, sr, duration + 2.0, duration + 5.0)
    out = audio.crop(x, sr, duration + 2.0, duration + 5.0)
    assert out.shape == ref.shape == (1, 5 * sr)
    assert not out.any()
    with pytest.raises(audio.AudioError):
        audio.crop_chunks(x, sr, [0.0, duration + 2.0], 3.0)


def test_crop_chunks_six_channels_odd_length(six_channels):
    # 2.375 s = 38000 samples, not a multiple of 32: with 5+ channels ATen sums
    # the last 16 columns of each crop in another order, so the port must
    # downmix crop by crop (downmixing the whole file first differs by 1 ulp)
    x, sr = six_channels
    starts = [0.0, 0.5, 1.0 / 3.0, 14.0]
    out = audio.crop_chunks(x, sr, starts, 2.375)
    for c, start in enumerate(starts):
        np.testing.assert_array_equal(out[c], _pyannote_crop(x, sr, start, start + 2.375))
    # and at 48 kHz: per-chunk downmix then per-chunk resampling
    out = audio.crop_chunks(x, 48000, starts[:2], 2.375)
    for c, start in enumerate(starts[:2]):
        assert np.abs(out[c] - _pyannote_crop(x, 48000, start, start + 2.375)).max() <= ATOL


def test_crop_chunks_resamples_each_chunk_on_its_own(recordings):
    # edge effects of per-chunk resampling: differs from cropping the resampled file
    x, sr = recordings["test_with_noise_48k.wav"]
    chunk = audio.crop_chunks(x, sr, [1.0], 10.0)[0]
    whole = audio.resample(x, sr, 16000)[:, 16000:176000]
    assert np.abs(chunk - whole).max() > 1e-4
    ref = _pyannote_crop(x, sr, 1.0, 11.0)
    assert np.abs(chunk - ref).max() <= ATOL


def test_downmix_and_resample(stereo_44k):
    from pyannote.audio.core.io import Audio

    x, sr = stereo_44k
    ref, ref_sr = Audio(sample_rate=16000, mono="downmix").downmix_and_resample(torch.from_numpy(x), sr)
    out, out_sr = audio.downmix_and_resample(x, sr)
    assert out_sr == ref_sr == 16000
    assert out.shape == tuple(ref.shape)
    assert np.abs(out - ref.numpy()).max() <= ATOL


# ---------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
def test_load_matches_pcm16_scaling(name):
    waveform, sr = audio.load(DATA / name)
    raw, raw_sr = sf.read(str(DATA / name), dtype="int16", always_2d=True)
    assert sr == raw_sr
    assert waveform.dtype == np.float32 and waveform.shape == raw.T.shape
    np.testing.assert_array_equal(waveform, raw.T.astype(np.float32) / np.float32(32768))


def test_load_stereo_flac(tmp_path):
    rng = np.random.default_rng(0)
    data = (rng.uniform(-0.5, 0.5, size=(8000, 2))).astype(np.float32)
    path = tmp_path / "stereo.flac"
    sf.write(str(path), data, 8000, subtype="PCM_16")
    waveform, sr = audio.load(path)
    assert sr == 8000 and waveform.shape == (2, 8000)


def test_load_silence_is_valid(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(str(path), np.zeros(1600, dtype=np.float32), 16000, subtype="PCM_16")
    waveform, sr = audio.load(path)
    assert sr == 16000 and waveform.shape == (1, 1600) and not waveform.any()


def _assert_one_line_error(path, fragment):
    with pytest.raises(audio.AudioError) as info:
        audio.load(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert fragment in message
    return message


def test_load_missing_file(tmp_path):
    _assert_one_line_error(tmp_path / "nope.wav", "not found")


def test_load_directory(tmp_path):
    _assert_one_line_error(tmp_path, "directory")


def test_load_not_audio(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_bytes(b"this is not audio\n" * 10)
    _assert_one_line_error(path, "not a readable audio file")


def test_load_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    _assert_one_line_error(path, "empty")


def test_load_zero_samples(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(str(path), np.zeros((0, 1), dtype=np.float32), 16000, subtype="PCM_16")
    _assert_one_line_error(path, "no audio samples")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_load_non_finite(tmp_path, bad):
    path = tmp_path / "bad.wav"
    data = np.zeros(1600, dtype=np.float32)
    data[100] = bad
    sf.write(str(path), data, 16000, subtype="FLOAT")
    _assert_one_line_error(path, "NaN or infinite")


def test_audio_error_is_value_error():
    assert issubclass(audio.AudioError, ValueError)
