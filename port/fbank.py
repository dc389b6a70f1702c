"""Kaldi-compatible log-mel filterbank features without torch.

Mirrors ``torchaudio.compliance.kaldi.fbank`` and
``pyannote.audio.models.embedding.wespeaker.BaseWeSpeakerResNet.compute_fbank``.

Precision strategy (torch computes everything in float32):

* framing, DC removal (ATen's float32 summation order), pre-emphasis and
  windowing are float32 with torch's operation order, so the FFT input equals
  torch's up to one-ulp differences of a few window coefficients;
* the mel filterbank is built in float32 like ``get_mel_banks`` with a
  correctly rounded log (torch's float32 log may differ by one ulp on some
  inputs, per build: no platform table is copied);
* the FFT, power spectrum, mel projection and log are computed in float64
  and rounded once to float32. torch's float32 FFT (MKL) carries an absolute
  error of ~1e-7 x the frame's peak magnitude, which in log-mel units is
  ~1e-5 for bands within 30-50 dB of the frame's loudest band but reaches
  ~1e-3 for bands 60-90 dB below it. No float32 FFT but MKL's reproduces
  those errors (numpy's float32 FFT is as far from torch as float64 is), so
  the port computes the exact value;
* all-zero frames (zero-padded chunk tails) give exactly torch's ``log(eps)``;
* the time mean / running mean of ``compute_fbank`` use ATen's float32
  summation order (``torch.mean`` cascade, ``avg_pool1d`` sequential sums).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from port.audio import AudioError, _ilp_row_sum, _inner_sum, _multi_row_sum

__all__ = ["fbank", "compute_fbank", "get_mel_banks", "conv1d_num_frames"]

# numeric_limits<float>::epsilon(), as torchaudio.compliance.kaldi.EPSILON
_EPSILON = np.float32(np.finfo(np.float32).eps)
_MILLISECONDS_TO_SECONDS = 0.001
_WINDOWS = ("hamming", "hanning", "povey", "rectangular", "blackman")

# frames per FFT block: bounds the float64 spectrum buffers (~4k x 257 x 16 B)
_FRAMES_PER_BLOCK = 4096


def _next_power_of_2(x: int) -> int:
    """Smallest power of 2 >= x. Mirrors ``kaldi._next_power_of_2``."""
    return 1 if x == 0 else 2 ** (x - 1).bit_length()


def _cos32(x: np.ndarray) -> np.ndarray:
    """float32 cosine, correctly rounded (torch's vectorised cos is within 1 ulp).

    Helper for the window functions mirroring ``torch.hamming_window``.
    """
    return np.cos(x.astype(np.float64)).astype(np.float32)


def _hamming_window32(n: int, alpha: float, beta: float) -> np.ndarray:
    """Symmetric generalised Hamming window in float32.

    Mirrors ``torch.hamming_window(n, periodic=False, alpha, beta,
    dtype=torch.float32)``: ``alpha - beta * cos(arange(n) * 2pi / (n - 1))``
    with each step rounded to float32.
    """
    if n == 1:
        return np.ones(1, dtype=np.float32)
    t = np.arange(n, dtype=np.float32) * np.float32(math.pi * 2.0 / (n - 1))
    return _cos32(t) * np.float32(-beta) + np.float32(alpha)


def _feature_window_function(window_type: str, window_size: int, blackman_coeff: float) -> np.ndarray:
    """Window of ``window_size`` float32 samples.

    Mirrors ``torchaudio.compliance.kaldi._feature_window_function``.
    """
    f32 = np.float32
    if window_type == "hanning":
        return _hamming_window32(window_size, 0.5, 0.5)
    if window_type == "hamming":
        return _hamming_window32(window_size, 0.54, 0.46)
    if window_type == "povey":
        hann = _hamming_window32(window_size, 0.5, 0.5)
        return np.power(hann.astype(np.float64), 0.85).astype(np.float32)
    if window_type == "rectangular":
        return np.ones(window_size, dtype=np.float32)
    if window_type == "blackman":
        a = 2 * math.pi / (window_size - 1)
        n = np.arange(window_size, dtype=np.float32)
        return (
            f32(blackman_coeff)
            - f32(0.5) * _cos32(f32(a) * n)
            + f32(0.5 - blackman_coeff) * _cos32(f32(2 * a) * n)
        ).astype(np.float32)
    raise AudioError(f"invalid window type {window_type!r} (expected one of {', '.join(_WINDOWS)})")


def _log32(x: np.ndarray) -> np.ndarray:
    """float32 natural log for ``mel_scale``, correctly rounded.

    ``torch.Tensor.log`` on float32 is within one ulp of this (MKL's VML on
    x86 builds differs on some inputs, differently per build and grid); the
    port copies no platform's rounding. The mel weights then differ from
    torch's by up to ~7e-6, within pyannote's own float32 noise (tests/test_fbank.py).
    """
    return np.log(x.astype(np.float64)).astype(np.float32)


def _mel_scale32(freq: np.ndarray) -> np.ndarray:
    """``1127 * log(1 + f / 700)`` in float32. Mirrors ``kaldi.mel_scale``."""
    f32 = np.float32
    inner = f32(1.0) + freq / f32(700.0)
    return f32(1127.0) * _log32(inner)


def get_mel_banks(
    num_bins: int,
    window_length_padded: int,
    sample_freq: float,
    low_freq: float,
    high_freq: float,
) -> np.ndarray:
    """Triangular mel filterbank ``(num_bins, window_length_padded // 2)`` float32.

    Mirrors ``torchaudio.compliance.kaldi.get_mel_banks`` without VTLN
    (``vtln_warp_factor == 1``), with torch's float32 arithmetic (the default
    dtype torch builds the banks in).
    """
    f32 = np.float32
    if num_bins <= 3:
        raise AudioError("fbank needs at least 4 mel bins")
    if window_length_padded % 2:
        raise AudioError("padded window length must be even")
    num_fft_bins = window_length_padded // 2
    nyquist = 0.5 * sample_freq
    if high_freq <= 0.0:
        high_freq += nyquist
    if not ((0.0 <= low_freq < nyquist) and (0.0 < high_freq <= nyquist) and (low_freq < high_freq)):
        raise AudioError(
            f"bad mel frequency range: low-freq {low_freq} and high-freq {high_freq} vs. nyquist {nyquist}"
        )
    fft_bin_width = sample_freq / window_length_padded
    mel_low_freq = 1127.0 * math.log(1.0 + low_freq / 700.0)
    mel_high_freq = 1127.0 * math.log(1.0 + high_freq / 700.0)
    mel_freq_delta = (mel_high_freq - mel_low_freq) / (num_bins + 1)

    b = np.arange(num_bins, dtype=np.float32)[:, None]
    delta, low = f32(mel_freq_delta), f32(mel_low_freq)
    left_mel = low + b * delta
    center_mel = low + (b + f32(1.0)) * delta
    right_mel = low + (b + f32(2.0)) * delta

    mel = _mel_scale32(f32(fft_bin_width) * np.arange(num_fft_bins, dtype=np.float32))[None, :]
    up_slope = (mel - left_mel) / (center_mel - left_mel)
    down_slope = (right_mel - mel) / (right_mel - center_mel)
    return np.maximum(f32(0.0), np.minimum(up_slope, down_slope)).astype(np.float32)


def _frames(waveforms: np.ndarray, window_size: int, window_shift: int, snip_edges: bool) -> np.ndarray:
    """Overlapping frames ``(batch, m, window_size)`` (a strided view when possible).

    Mirrors ``torchaudio.compliance.kaldi._get_strided`` for each row,
    including the reflection at the edges when ``snip_edges`` is False.
    """
    batch, num_samples = waveforms.shape
    if snip_edges:
        m = 1 + (num_samples - window_size) // window_shift
        x = np.ascontiguousarray(waveforms)
    else:
        m = (num_samples + window_shift // 2) // window_shift
        pad = window_size // 2 - window_shift // 2
        reversed_waveform = waveforms[:, ::-1]
        if pad > 0:
            pad_left = reversed_waveform[:, num_samples - pad :]
            x = np.concatenate((pad_left, waveforms, reversed_waveform), axis=1)
        else:
            x = np.concatenate((waveforms[:, -pad:], reversed_waveform), axis=1)
        x = np.ascontiguousarray(x)
    item = x.itemsize
    return as_strided(
        x,
        shape=(batch, m, window_size),
        strides=(x.strides[0], window_shift * item, item),
        writeable=False,
    )


def fbank(
    waveforms: np.ndarray,
    *,
    num_mel_bins: int = 23,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    round_to_power_of_two: bool = True,
    snip_edges: bool = True,
    dither: float = 0.0,
    window_type: str = "povey",
    use_energy: bool = False,
    sample_frequency: float = 16000.0,
    preemphasis_coefficient: float = 0.97,
    remove_dc_offset: bool = True,
    raw_energy: bool = True,
    energy_floor: float = 1.0,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    blackman_coeff: float = 0.42,
    use_power: bool = True,
    use_log_fbank: bool = True,
    htk_compat: bool = False,
    subtract_mean: bool = False,
    min_duration: float = 0.0,
    vtln_low: float = 100.0,
    vtln_high: float = -500.0,
    vtln_warp: float = 1.0,
) -> np.ndarray:
    """Log-mel filterbank features of each row: ``(batch, samples) -> (batch, frames, bins)``.

    Mirrors ``torchaudio.compliance.kaldi.fbank`` applied to each waveform
    (as ``torch.vmap(kaldi.fbank)`` does in pyannote), with the same defaults.
    Output is float32 with ``num_mel_bins + use_energy`` columns. A 1-D input
    is treated as a single waveform and gives ``(frames, bins)``.
    Dithering (random) and VTLN warping are not supported.
    """
    x = np.asarray(waveforms)
    squeeze = x.ndim == 1
    if squeeze:
        x = x[None, :]
    if x.ndim != 2:
        raise AudioError(f"fbank expects (batch, samples) waveforms, got shape {x.shape}")
    x = x.astype(np.float32, copy=False)
    if dither != 0.0:
        raise NotImplementedError("fbank: dither != 0 (random) is not supported")
    if vtln_warp != 1.0:
        raise NotImplementedError("fbank: VTLN warping is not supported")
    if window_type not in _WINDOWS:
        raise AudioError(f"invalid window type {window_type!r} (expected one of {', '.join(_WINDOWS)})")

    window_shift = int(sample_frequency * frame_shift * _MILLISECONDS_TO_SECONDS)
    window_size = int(sample_frequency * frame_length * _MILLISECONDS_TO_SECONDS)
    padded_window_size = _next_power_of_2(window_size) if round_to_power_of_two else window_size
    num_samples = x.shape[1]
    if not 2 <= window_size <= num_samples:
        raise AudioError(
            f"waveform too short for fbank: {num_samples} samples, window of {window_size} samples"
        )
    if window_shift <= 0:
        raise AudioError("fbank frame shift must be positive")
    if padded_window_size % 2:
        raise AudioError("the padded fbank window size must be even (use round_to_power_of_two)")
    if not 0.0 <= preemphasis_coefficient <= 1.0:
        raise AudioError("fbank preemphasis coefficient must be in [0, 1]")
    if sample_frequency <= 0:
        raise AudioError("fbank sample frequency must be positive")

    num_bins = num_mel_bins + (1 if use_energy else 0)
    if num_samples < min_duration * sample_frequency:
        empty = np.zeros((x.shape[0], 0, num_bins), dtype=np.float32)
        return empty[0] if squeeze else empty

    mel = get_mel_banks(num_mel_bins, padded_window_size, sample_frequency, low_freq, high_freq)
    mel64 = np.zeros((padded_window_size // 2 + 1, num_mel_bins), dtype=np.float64)
    mel64[: mel.shape[1]] = mel.T
    # columns of the spectrum that some mel filter uses (skip the rest)
    used = np.nonzero(mel64.any(axis=1))[0]
    k0, k1 = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 0)
    mel64 = np.ascontiguousarray(mel64[k0:k1])

    window = _feature_window_function(window_type, window_size, blackman_coeff)
    frames = _frames(x, window_size, window_shift, snip_edges)
    batch, m, _ = frames.shape

    out = np.empty((batch, m, num_bins), dtype=np.float32)
    first = 1 if (use_energy and not htk_compat) else 0
    eps64 = np.float64(_EPSILON)
    f32 = np.float32

    for b0, b1, i0, i1 in _blocks(batch, m, _FRAMES_PER_BLOCK):
        # (frames, window_size) float32 copy of this block
        block = np.array(frames[b0:b1, i0:i1], dtype=np.float32).reshape(-1, window_size)
        if remove_dc_offset:
            # torch.mean(dim=1): float32 sum in ATen's order, divided by n
            row_means = _inner_sum(block) / f32(window_size)
            block -= row_means[:, None]
        if use_energy and raw_energy:
            log_energy = _log_energy(block, energy_floor)
        if preemphasis_coefficient != 0.0:
            shifted = np.empty_like(block)
            shifted[:, 1:] = block[:, :-1]
            shifted[:, 0] = block[:, 0]
            shifted *= f32(preemphasis_coefficient)
            block -= shifted
        block *= window
        if use_energy and not raw_energy:
            # torch sums the squares of the zero-padded frame (another order)
            padded = np.zeros((block.shape[0], padded_window_size), dtype=np.float32)
            padded[:, :window_size] = block
            log_energy = _log_energy(padded, energy_floor)

        spectrum = np.fft.rfft(block.astype(np.float64), n=padded_window_size, axis=1)[:, k0:k1]
        power = spectrum.real * spectrum.real
        power += spectrum.imag * spectrum.imag
        if not use_power:
            power = np.sqrt(power)
        energies = power @ mel64
        if use_log_fbank:
            energies = np.log(np.maximum(energies, eps64))
        dest = out[b0:b1, i0:i1]
        dest[..., first : first + num_mel_bins] = energies.reshape(b1 - b0, i1 - i0, num_mel_bins)
        if use_energy:
            dest[..., num_mel_bins if htk_compat else 0] = log_energy.reshape(b1 - b0, i1 - i0)

    result = out
    if subtract_mean:
        result = result - _time_mean(result)
    return result[0] if squeeze else result


def _blocks(batch: int, m: int, frames_per_block: int):
    """Split ``batch`` waveforms of ``m`` frames into blocks of about
    ``frames_per_block`` frames: whole waveforms when they fit, else slices.

    Helper of :func:`fbank` (memory bound; no torch counterpart).
    """
    if m <= frames_per_block:
        per = max(1, frames_per_block // max(m, 1))
        for b0 in range(0, batch, per):
            yield b0, min(batch, b0 + per), 0, m
    else:
        for b in range(batch):
            for i0 in range(0, m, frames_per_block):
                yield b, b + 1, i0, min(m, i0 + frames_per_block)


def _log_energy(frames: np.ndarray, energy_floor: float) -> np.ndarray:
    """Per-frame log energy in float32.

    Mirrors ``torchaudio.compliance.kaldi._get_log_energy``:
    ``max(log(max(sum(x^2), eps)), log(energy_floor))`` (sum in ATen's order;
    log correctly rounded, torch's is within one ulp).
    """
    energy = np.maximum(_inner_sum(frames * frames), _EPSILON)
    log_energy = np.log(energy.astype(np.float64)).astype(np.float32)
    if energy_floor != 0.0:
        log_energy = np.maximum(log_energy, np.float32(math.log(energy_floor)))
    return log_energy


def _time_mean(features: np.ndarray) -> np.ndarray:
    """Mean over frames ``(batch, frames, bins) -> (batch, 1, bins)`` in float32.

    Mirrors ``torch.mean(features, dim=1, keepdim=True)`` on CPU: an outer
    reduction (``multi_row_sum`` cascade over frames) for blocks of 32 bins,
    4 interleaved accumulators (``row_sum``) for the last ``bins % 32``, then
    division by the number of frames.
    """
    batch, num_frames, num_bins = features.shape
    rows = np.moveaxis(features, 1, 0)  # (frames, batch, bins)
    head = num_bins - num_bins % 32
    total = np.empty((batch, num_bins), dtype=np.float32)
    if head:
        total[:, :head] = _multi_row_sum(rows[:, :, :head])
    if head < num_bins:
        total[:, head:] = _ilp_row_sum(rows[:, :, head:])
    return (total / np.float32(num_frames))[:, None, :]


def conv1d_num_frames(num_samples: int, kernel_size: int = 5, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Number of frames after a 1-D convolution.

    Mirrors ``pyannote.audio.utils.receptive_field.conv1d_num_frames``.
    """
    return 1 + (num_samples + 2 * padding - dilation * (kernel_size - 1) - 1) // stride


# WeSpeaker defaults of BaseWeSpeakerResNet.__init__
WESPEAKER_HPARAMS = {
    "sample_rate": 16000,
    "num_mel_bins": 80,
    "frame_length": 25.0,
    "frame_shift": 10.0,
    "dither": 0.0,
    "round_to_power_of_two": True,
    "snip_edges": True,
    "window_type": "hamming",
    "use_energy": False,
    "fbank_centering_span": None,
}


def compute_fbank(waveforms: np.ndarray, hparams: dict | None = None) -> np.ndarray:
    """WeSpeaker input features: ``(batch, [1,] samples) -> (batch, frames, bins)``.

    Mirrors ``BaseWeSpeakerResNet.compute_fbank``: scale by 2**15, Kaldi
    fbank per waveform (channel 0), then subtract the mean over time, or a
    running mean (``avg_pool1d``, ``count_include_pad=False``) over
    ``fbank_centering_span`` seconds when that hyper-parameter is set.
    ``hparams`` keys default to the WeSpeaker ones (:data:`WESPEAKER_HPARAMS`).
    """
    hp = dict(WESPEAKER_HPARAMS)
    if hparams:
        hp.update({k: v for k, v in dict(hparams).items() if k in WESPEAKER_HPARAMS})
    x = np.asarray(waveforms, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, 0, :]  # kaldi.fbank(channel=-1) reads channel 0
    if x.ndim != 2:
        raise AudioError(f"compute_fbank expects (batch, channels, samples) waveforms, got shape {x.shape}")
    x = x * np.float32(1 << 15)

    features = fbank(
        x,
        num_mel_bins=hp["num_mel_bins"],
        frame_length=hp["frame_length"],
        round_to_power_of_two=hp["round_to_power_of_two"],
        frame_shift=hp["frame_shift"],
        snip_edges=hp["snip_edges"],
        dither=hp["dither"],
        sample_frequency=hp["sample_rate"],
        window_type=hp["window_type"],
        use_energy=hp["use_energy"],
    )

    span = hp["fbank_centering_span"]
    if span is None:
        return features - _time_mean(features)

    window_size = int(hp["sample_rate"] * hp["frame_length"] * 0.001)
    step_size = int(hp["sample_rate"] * hp["frame_shift"] * 0.001)
    kernel_size = conv1d_num_frames(
        num_samples=int(span * hp["sample_rate"]),
        kernel_size=window_size,
        stride=step_size,
        padding=0,
        dilation=1,
    )
    return features - _running_mean(features, kernel_size // 2)


def _running_mean(features: np.ndarray, half: int) -> np.ndarray:
    """Centred moving average over time, ignoring padding.

    Mirrors ``F.avg_pool1d(features.transpose(1, 2), kernel_size=2 * half + 1,
    stride=1, padding=half, count_include_pad=False).transpose(1, 2)``: ATen's
    CPU average pooling adds the window's values one by one in float32 and
    divides by the number of non-padded values.
    """
    batch, num_frames, num_bins = features.shape
    if half < 0:
        raise AudioError("fbank centering span is shorter than one frame")
    padded = np.zeros((batch, num_frames + 2 * half, num_bins), dtype=np.float32)
    padded[:, half : half + num_frames] = features
    total = np.zeros((batch, num_frames, num_bins), dtype=np.float32)
    # zeros added before the first / after the last real value leave the
    # float32 partial sums unchanged, so this is torch's order exactly
    for j in range(2 * half + 1):
        total += padded[:, j : j + num_frames]
    t = np.arange(num_frames)
    counts = np.minimum(t + half + 1, num_frames) - np.maximum(t - half, 0)
    return total / counts.astype(np.float32)[None, :, None]
