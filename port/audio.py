"""Audio input: decoding, downmixing, resampling and cropping without torch.

Mirrors ``pyannote.audio.core.io.Audio`` (``Audio(sample_rate=16000,
mono="downmix")``) and ``torchaudio.functional.resample``.

* Decoding: WAV and FLAC with soundfile (libsndfile), bit-identical to
  torchcodec/FFmpeg as pyannote uses it (``x / 32768`` for 16-bit PCM).
  Everything else (MP3, AAC/M4A, Ogg Vorbis, Opus, ...) with PyAV, which bundles
  FFmpeg: FFmpeg's own decoders, converted to float32 planar by swresample as
  torchcodec does, so sample count, priming/padding and rate match torchcodec's
  (libsndfile's own MP3/Vorbis decoders differ; it cannot read AAC).
* Downmixing averages channels in float32 in the same order as
  ``waveform.mean(dim=0, keepdim=True)``.
* Resampling is torchaudio's windowed-sinc (Hann) resampler: the kernel is
  computed in the waveform's dtype with the same arithmetic, the convolution
  is accumulated in float64 and rounded once to the waveform's dtype.
* Cropping follows ``Audio.crop(..., mode="pad")`` on an in-memory waveform:
  crop at native rate, zero-pad, then downmix and resample *each crop on its
  own* (so edge effects of the resampler are reproduced).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

__all__ = [
    "AudioError",
    "SAMPLE_RATE",
    "load",
    "decoder",
    "downmix",
    "resample",
    "downmix_and_resample",
    "crop",
    "crop_chunks",
]

SAMPLE_RATE = 16000

# torchaudio.functional.resample defaults
_LOWPASS_FILTER_WIDTH = 6
_ROLLOFF = 0.99

# Upper bound on the number of float64 elements of one block of the
# convolution (input slab + per-block output): 256k elements = 2 MB, cache sized.
_BLOCK_ELEMENTS = 1 << 18
_MIN_BLOCK_POSITIONS = 4096

# crop_chunks resamples this many native-rate samples at a time (64 MB float32).
_CROP_GROUP_SAMPLES = 1 << 24


class AudioError(ValueError):
    """Bad audio input (one-line message naming the file and the problem).

    Mirrors the ``ValueError``/``RuntimeError`` raised by
    ``pyannote.audio.core.io.Audio`` and torchcodec on unreadable input.
    """


# ---------------------------------------------------------------------------
# decoding
# ---------------------------------------------------------------------------


def load(path) -> tuple[np.ndarray, int]:
    """Decode an audio file to float32 ``(channels, samples)`` at its native rate.

    Mirrors ``pyannote.audio.core.io.Audio.__call__`` decoding step
    (``torchcodec.decoders.AudioDecoder(path).get_all_samples()``), using
    soundfile instead of FFmpeg. Raises :class:`AudioError` for a missing
    file, a directory, an empty or non-audio file, zero-sample audio and
    NaN/inf samples.
    """
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: file not found")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, not an audio file")
    if not p.is_file():
        raise AudioError(f"{p}: not a regular file")
    try:
        size = p.stat().st_size
    except OSError as e:  # pragma: no cover - permission races etc.
        raise AudioError(f"{p}: cannot read file ({_one_line(e)})") from None
    if size == 0:
        raise AudioError(f"{p}: empty file (0 bytes)")
    try:
        if _libsndfile_exact(p):
            data, sample_rate = sf.read(str(p), dtype="float32", always_2d=True)
            waveform = np.ascontiguousarray(data.T)
        else:
            waveform, sample_rate = _load_ffmpeg(p)
    except MemoryError:
        raise AudioError(f"{p}: file too large to decode in memory") from None
    except AudioError:
        raise
    except Exception as e:  # soundfile.LibsndfileError, av.error.*, RuntimeError, ...
        raise AudioError(f"{p}: not a readable audio file ({_one_line(e)})") from None
    if waveform.ndim != 2 or waveform.shape[0] == 0 or waveform.shape[1] == 0:
        raise AudioError(f"{p}: contains no audio samples")
    if sample_rate is None or int(sample_rate) <= 0:
        raise AudioError(f"{p}: invalid sample rate {sample_rate}")
    if not _all_finite(waveform):
        raise AudioError(f"{p}: contains NaN or infinite samples")
    return waveform, int(sample_rate)


# containers whose samples libsndfile decodes exactly as FFmpeg does (PCM, FLAC)
_LIBSNDFILE_EXACT = {"WAV", "WAVEX", "RF64", "W64", "FLAC", "AIFF"}


def _libsndfile_exact(path: Path) -> bool:
    """Whether libsndfile reads this file with FFmpeg's exact values (helper of :func:`load`)."""
    try:
        info = sf.info(str(path))
    except Exception:  # not a libsndfile format: FFmpeg's turn
        return False
    return info.format in _LIBSNDFILE_EXACT and not info.subtype.startswith(("MPEG", "VORBIS", "OPUS"))


def _load_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    """All samples of the first audio stream, float32 ``(channels, samples)``, by FFmpeg (PyAV).

    Mirrors ``torchcodec.decoders.AudioDecoder(path).get_all_samples()``: every
    decoded frame (FFmpeg trims encoder priming and padding as torchcodec does),
    converted to float32 planar at the stream's own rate by swresample.
    """
    try:
        import av
    except ImportError:
        raise AudioError(f"{path}: not WAV/FLAC; decoding it needs PyAV ('pip install av')") from None
    chunks = []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise AudioError(f"{path}: no audio stream")
        stream = container.streams.audio[0]
        sample_rate = stream.codec_context.sample_rate or stream.sample_rate
        resampler = None
        for frame in container.decode(stream):
            if frame.format.name != "fltp":
                if resampler is None:
                    resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=frame.sample_rate)
                frames = resampler.resample(frame)
            else:
                frames = [frame]
            chunks.extend(f.to_ndarray() for f in frames)
        if resampler is not None:
            chunks.extend(f.to_ndarray() for f in resampler.resample(None))
    if not chunks:
        raise AudioError(f"{path}: contains no audio samples")
    return np.ascontiguousarray(np.concatenate(chunks, axis=1), dtype=np.float32), int(sample_rate)


def decoder(path) -> str:
    """Which decoder :func:`load` uses for this file, with its version (for manifests)."""
    if _libsndfile_exact(Path(path)):
        return f"soundfile {sf.__version__} (libsndfile {sf.__libsndfile_version__})"
    try:
        import av
    except ImportError:
        return "none (PyAV not installed)"
    return f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})"


def _one_line(error: BaseException) -> str:
    """Collapse an exception message to one line (helper of :func:`load`)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _all_finite(waveform: np.ndarray, block: int = 1 << 22) -> bool:
    """Whether every sample is finite, checked in blocks (helper of :func:`load`)."""
    flat = waveform.reshape(-1)
    for i in range(0, flat.size, block):
        if not np.isfinite(flat[i : i + block]).all():
            return False
    return True


# ---------------------------------------------------------------------------
# downmix
# ---------------------------------------------------------------------------


def downmix(waveform: np.ndarray) -> np.ndarray:
    """Average channels: ``(channels, samples) -> (1, samples)`` float32.

    Mirrors ``waveform.mean(dim=0, keepdim=True)`` as used in
    ``Audio.downmix_and_resample(mono="downmix")``: torch (CPU) computes
    ``sum(dim=0) / channels`` in float32, the sum being ATen's
    ``multi_row_sum`` over channels (sequential within groups of 16 channels,
    groups accumulated one level up), except for the last ``samples % 32``
    columns, which ATen's AVX2 kernel sums with 4 interleaved accumulators
    (``row_sum``). Bit-exact against torch 2.11 on x86 (tested with 1 to 17
    channels); the order only matters for 5 channels or more.
    """
    w = np.asarray(waveform)
    if w.ndim != 2:
        raise AudioError(f"waveform must be (channels, samples), got shape {w.shape}")
    if not np.issubdtype(w.dtype, np.floating):
        w = w.astype(np.float32)
    num_channels = w.shape[0]
    if num_channels == 0:
        raise AudioError("waveform has no channels")
    if num_channels == 1:
        return w.copy()
    num_samples = w.shape[1]
    if num_samples == 1:
        # a single column is contiguous over channels: ATen's inner sum
        return (_inner_sum(w[:, 0]) / w.dtype.type(num_channels)).reshape(1, 1)
    acc = np.empty((1, num_samples), dtype=w.dtype)
    # columns in blocks of 32 (4 AVX2 float vectors; ATen's sum kernel has no
    # AVX-512 variant): plain cascade over rows
    head = num_samples - num_samples % 32
    acc[0, :head] = _multi_row_sum(w[:, :head])
    # last columns: ATen's row_sum, rows viewed as (-1, 4) with 4 accumulators
    if head < num_samples:
        acc[0, head:] = _ilp_row_sum(w[:, head:])
    acc /= w.dtype.type(num_channels)
    return acc


def _multi_row_sum(w: np.ndarray) -> np.ndarray:
    """Cascade sum over axis 0: ``(size, ...) -> (...)``.

    Mirrors ``multi_row_sum`` in ATen/native/cpu/SumKernel.cpp (4 levels,
    level step ``2 ** max(4, ceil(log2(size)) // 4)``; sequential float
    additions within a level).
    """
    size = w.shape[0]
    num_levels = 4
    ceil_log2 = int(size - 1).bit_length() if size > 1 else 0
    level_power = max(4, ceil_log2 // num_levels)
    level_step = 1 << level_power
    level_mask = level_step - 1
    acc = [np.zeros(w.shape[1:], dtype=w.dtype) for _ in range(num_levels)]
    i = 0
    while i + level_step <= size:
        for _ in range(level_step):
            acc[0] += w[i]
            i += 1
        for j in range(1, num_levels):
            acc[j] += acc[j - 1]
            acc[j - 1][...] = 0
            if i & (level_mask << (j * level_power)):
                break
    while i < size:
        acc[0] += w[i]
        i += 1
    for j in range(1, num_levels):
        acc[0] += acc[j]
    return acc[0]


def _ilp_row_sum(w: np.ndarray) -> np.ndarray:
    """Sum over axis 0 with 4 interleaved accumulators: ``(size, ...) -> (...)``.

    Mirrors ``row_sum`` (ilp_factor 4) in ATen/native/cpu/SumKernel.cpp: the
    rows are viewed as ``(-1, 4)``, each column of that view is summed by
    :func:`_multi_row_sum`, the leftover rows are added to the first partial
    sum, then the 4 partial sums are added in order.
    """
    size = w.shape[0]
    size_ilp = size // 4
    partial = _multi_row_sum(w[: 4 * size_ilp].reshape((size_ilp, 4) + w.shape[1:]))
    for i in range(4 * size_ilp, size):
        partial[0] += w[i]
    for k in range(1, 4):
        partial[0] += partial[k]
    return partial[0]


def _inner_sum(x: np.ndarray) -> np.ndarray:
    """float32 sum over the last (contiguous) axis in ATen's order.

    Mirrors ``vectorized_inner_sum`` in ATen/native/cpu/SumKernel.cpp with
    AVX2 vectors of 8 floats: the vectors of a row are summed by ``row_sum``
    (4 interleaved vector accumulators), then the scalar tail and the 8 lanes
    are added one by one. Rows shorter than 8 use the scalar ``row_sum``.
    """
    n = x.shape[-1]
    if n < 8:
        return _ilp_row_sum(np.moveaxis(x, -1, 0))
    nvec = n // 8
    vectors = x[..., : nvec * 8].reshape(x.shape[:-1] + (nvec, 8))
    lanes = _ilp_row_sum(np.moveaxis(vectors, -2, 0))
    total = np.zeros(x.shape[:-1], dtype=x.dtype)
    for k in range(nvec * 8, n):
        total += x[..., k]
    for j in range(8):
        total += lanes[..., j]
    return total


# ---------------------------------------------------------------------------
# resampling
# ---------------------------------------------------------------------------


def _sinc_resample_kernel(
    orig_freq: int,
    new_freq: int,
    gcd: int,
    dtype=np.float32,
    lowpass_filter_width: int = _LOWPASS_FILTER_WIDTH,
    rolloff: float = _ROLLOFF,
) -> tuple[np.ndarray, int]:
    """Windowed-sinc (Hann) kernel ``(new, 2 * width + orig)`` and ``width``.

    Mirrors ``torchaudio.functional.functional._get_sinc_resample_kernel``
    with ``resampling_method="sinc_interp_hann"`` and ``dtype=waveform.dtype``
    (float32 for pyannote): every step is done in ``dtype`` in torch's order.
    sin/cos are evaluated in float64 and rounded to ``dtype``; torch's
    vectorised float32 sin/cos is within one ulp of that (it differs on ~0.5%
    of the taps, by one ulp: <= 2e-7, an output change of ~1e-8).
    """
    f = np.dtype(dtype).type
    orig = int(orig_freq) // gcd
    new = int(new_freq) // gcd
    base_freq = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base_freq)

    idx = np.arange(-width, width + orig, dtype=dtype)[None, :] / f(orig)
    t = np.arange(0, -new, -1, dtype=dtype)[:, None] / f(new) + idx
    t *= f(base_freq)
    t = np.clip(t, f(-lowpass_filter_width), f(lowpass_filter_width))

    arg = t * f(math.pi) / f(lowpass_filter_width) / f(2)
    cos = np.cos(arg.astype(np.float64)).astype(dtype)
    window = cos * cos

    t = t * f(math.pi)
    scale = base_freq / orig
    with np.errstate(invalid="ignore", divide="ignore"):
        sinc = np.sin(t.astype(np.float64)).astype(dtype) / t
    kernels = np.where(t == 0, f(1.0), sinc).astype(dtype)
    kernels *= window * f(scale)
    return kernels, width


def _resampled_length(length: int, orig_freq: int, new_freq: int) -> int:
    """Output length of :func:`resample` for ``length`` input samples.

    Mirrors ``torch.ceil(torch.as_tensor(new_freq * length / orig_freq))`` in
    ``torchaudio.functional.functional._apply_sinc_resample_kernel`` (rates
    reduced by their gcd, float64 division).
    """
    if orig_freq == new_freq:
        return length
    gcd = math.gcd(orig_freq, new_freq)
    return math.ceil((new_freq // gcd) * length / (orig_freq // gcd))


def resample(waveform: np.ndarray, orig_freq: int, new_freq: int) -> np.ndarray:
    """Resample ``(..., time)`` from ``orig_freq`` to ``new_freq``.

    Port of ``torchaudio.functional.resample(waveform, orig_freq, new_freq)``
    with its defaults (sinc_interp_hann, lowpass_filter_width=6,
    rolloff=0.99): gcd reduction, the same kernel, zero padding
    ``(width, width + orig)``, a strided convolution and output length
    ``ceil(new * length / orig)``. The convolution is accumulated in float64
    (torch: float32) and processed in blocks, so memory stays bounded.
    Returns the input unchanged when the rates are equal.
    """
    if int(orig_freq) != orig_freq or int(new_freq) != new_freq:
        raise AudioError(f"sample rates must be integers, got {orig_freq} and {new_freq}")
    orig_freq, new_freq = int(orig_freq), int(new_freq)
    if orig_freq <= 0 or new_freq <= 0:
        raise AudioError(f"sample rates must be positive, got {orig_freq} and {new_freq}")
    if orig_freq == new_freq:
        return waveform

    x = np.asarray(waveform)
    if not np.issubdtype(x.dtype, np.floating):
        raise AudioError(f"waveform must be floating point, got {x.dtype}")
    if x.ndim == 0:
        raise AudioError("waveform must have a time axis")

    gcd = math.gcd(orig_freq, new_freq)
    kernel, width = _sinc_resample_kernel(orig_freq, new_freq, gcd, dtype=x.dtype)
    orig = orig_freq // gcd
    new = new_freq // gcd

    shape = x.shape
    length = shape[-1]
    rows = x.reshape(-1, length)
    target_length = _resampled_length(length, orig_freq, new_freq)
    out = np.empty((rows.shape[0], target_length), dtype=x.dtype)
    if target_length == 0 or rows.shape[0] == 0:
        return out.reshape(shape[:-1] + (target_length,))

    # Polyphase form of conv1d(pad(x, (width, width + orig)), kernel, stride=orig):
    # output position p uses padded samples [p*orig, p*orig + K). Viewing the
    # padded signal as a (positions, orig) matrix B, window p is the
    # concatenation of rows p .. p+Q-1 of B, so
    #     y[p, :] = sum_q B[p + q, :] @ kernel[:, q*orig:(q+1)*orig].T
    # which needs no (positions x K) window matrix at all.
    ksize = kernel.shape[1]
    num_taps_rows = -(-ksize // orig)  # Q
    kpad = np.zeros((new, num_taps_rows * orig), dtype=np.float64)
    kpad[:, :ksize] = kernel
    # (Q, orig, new)
    kq = np.ascontiguousarray(kpad.reshape(new, num_taps_rows, orig).transpose(1, 2, 0))

    num_positions = -(-target_length // new)
    # one BLAS call per (row, block, q): cache-sized blocks, but never fewer
    # than 4096 positions (a few tens of MB at most for 44.1 kHz), since many
    # small calls are slow with threaded BLAS on a busy machine
    block = max(_MIN_BLOCK_POSITIONS, _BLOCK_ELEMENTS // (orig + new))

    for r in range(rows.shape[0]):
        row = rows[r]
        for p0 in range(0, num_positions, block):
            p1 = min(num_positions, p0 + block)
            npos = p1 - p0
            nrows_b = npos + num_taps_rows - 1
            # padded coordinates [p0*orig, (p0 + nrows_b)*orig) -> original ones
            s = p0 * orig - width
            e = s + nrows_b * orig
            buf = np.zeros(nrows_b * orig, dtype=np.float64)
            lo, hi = max(s, 0), min(e, length)
            if hi > lo:
                buf[lo - s : hi - s] = row[lo:hi]
            bmat = buf.reshape(nrows_b, orig)
            acc = bmat[0:npos] @ kq[0]
            for q in range(1, num_taps_rows):
                acc += bmat[q : q + npos] @ kq[q]
            flat = acc.reshape(-1)
            o0 = p0 * new
            o1 = min(target_length, o0 + flat.size)
            out[r, o0:o1] = flat[: o1 - o0]
    return out.reshape(shape[:-1] + (target_length,))


def downmix_and_resample(
    waveform: np.ndarray, sample_rate: int, target: int = SAMPLE_RATE
) -> tuple[np.ndarray, int]:
    """Downmix to mono (channel average) then resample to ``target``.

    Mirrors ``Audio(sample_rate=target, mono="downmix").downmix_and_resample``:
    averaging happens only for more than one channel, resampling only when the
    rates differ.
    """
    w = np.asarray(waveform)
    if w.ndim != 2:
        raise AudioError(f"waveform must be (channels, samples), got shape {w.shape}")
    if w.shape[0] > 1:
        w = downmix(w)
    if target is not None and int(target) != int(sample_rate):
        w = resample(w, int(sample_rate), int(target))
        sample_rate = int(target)
    return w, int(sample_rate)


# ---------------------------------------------------------------------------
# cropping
# ---------------------------------------------------------------------------


def _crop_bounds(num_samples: int, sample_rate: int, start: float, end: float):
    """Sample bounds and padding of one crop (helper of :func:`crop`).

    Mirrors the "waveform" branch of ``Audio.crop(..., mode="pad")``:
    ``round(t * sample_rate)`` indices (Python round, half to even), start
    clipped at 0 with ``-start`` samples of left padding, end clipped at the
    waveform length with ``end - num_samples`` samples of right padding.
    """
    start_sample = round(float(start) * sample_rate)
    pad_start = max(0, -start_sample)
    if start_sample < 0:
        start_sample = 0
    end_sample = round(float(end) * sample_rate)
    pad_end = max(end_sample, num_samples) - num_samples
    if end_sample >= num_samples:
        end_sample = num_samples
    return start_sample, end_sample, pad_start, pad_end


def _crop_native(waveform: np.ndarray, sample_rate: int, start: float, end: float) -> np.ndarray:
    """Native-rate crop with zero padding (helper of :func:`crop`).

    Mirrors ``F.pad(waveform[:, start_sample:end_sample], (pad_start, pad_end))``
    in ``Audio.crop``.
    """
    num_samples = waveform.shape[1]
    s, e, pad_start, pad_end = _crop_bounds(num_samples, sample_rate, start, end)
    data = waveform[:, s:e]
    if pad_start or pad_end:
        data = np.pad(data, ((0, 0), (pad_start, pad_end)))
    return data


def _check_waveform(waveform) -> np.ndarray:
    """Validate an in-memory floating-point ``(channel, time)`` waveform.

    Mirrors ``Audio.validate_file`` for ``{"waveform": ..., "sample_rate": ...}``.
    """
    w = np.asarray(waveform)
    if w.ndim != 2 or w.shape[0] > w.shape[1]:
        raise AudioError(f"waveform must be a (channel, time) array, got shape {w.shape}")
    if not np.issubdtype(w.dtype, np.floating):
        raise AudioError(f"waveform must be floating point, got {w.dtype}")
    return w


def crop(
    waveform: np.ndarray,
    sample_rate: int,
    start: float,
    end: float,
    target: int = SAMPLE_RATE,
) -> np.ndarray:
    """Crop ``[start, end]`` seconds with zero padding, then downmix and resample.

    Mirrors ``Audio(sample_rate=target, mono="downmix").crop(
    {"waveform": waveform, "sample_rate": sample_rate}, Segment(start, end),
    mode="pad")[0]``: ``(1, samples)`` at ``target`` Hz.
    """
    w = _check_waveform(waveform)
    data = _crop_native(w, int(sample_rate), start, end)
    out, _ = downmix_and_resample(data, int(sample_rate), target)
    return out


def crop_chunks(
    waveform: np.ndarray,
    sample_rate: int,
    starts: Sequence[float],
    duration: float,
    target: int = SAMPLE_RATE,
) -> np.ndarray:
    """Batched :func:`crop`: chunk ``c`` is ``[starts[c], starts[c] + duration]``.

    Mirrors calling ``Audio.crop(file, Segment(s, s + duration), mode="pad")``
    for each start, as pyannote's embedding step does for every chunk of its
    sliding window. Returns ``(num_chunks, 1, num_target_samples)``, equal to
    stacking :func:`crop` results. When ``sample_rate == target`` this is
    slicing and padding only; otherwise each chunk is resampled on its own
    (edge effects included), as pyannote does. All chunks must come out with
    the same length (pyannote could not batch them otherwise). The caller
    bounds memory by passing a batch of starts at a time.
    """
    w = _check_waveform(waveform)
    sample_rate = int(sample_rate)
    starts = [float(s) for s in np.asarray(starts, dtype=np.float64).reshape(-1)]
    duration = float(duration)
    num_channels, num_samples = w.shape
    resampling = target is not None and int(target) != sample_rate

    bounds = [_crop_bounds(num_samples, sample_rate, s, s + duration) for s in starts]
    native = {pad_s + max(e - s, 0) + pad_e for s, e, pad_s, pad_e in bounds}
    if len(native) > 1:
        raise AudioError(f"chunks have different lengths {sorted(native)}")
    n_native = native.pop() if native else round(duration * sample_rate)
    n_out = _resampled_length(n_native, sample_rate, int(target)) if resampling else n_native
    out = np.empty((len(starts), 1, n_out), dtype=w.dtype)
    if not starts:
        return out

    # With up to 4 channels ATen's channel sum is sequential in every column,
    # so downmixing the cropped samples equals downmixing the padded crop. With
    # more, the summation order depends on the column's position in the crop:
    # downmix each padded crop, as pyannote does.
    early = 1 < num_channels <= 4

    def native_crop(c: int) -> np.ndarray:
        """Chunk ``c`` at the native rate, downmixed: ``F.pad(waveform[:, s:e])``
        then ``mean(dim=0)`` as in ``Audio.crop``."""
        s, e, pad_s, _pad_e = bounds[c]
        row = np.zeros((1 if early else num_channels, n_native), dtype=w.dtype)
        if e > s:
            row[:, pad_s : pad_s + (e - s)] = downmix(w[:, s:e]) if early else w[:, s:e]
        return downmix(row) if row.shape[0] > 1 else row

    group = max(1, _CROP_GROUP_SAMPLES // max(n_native, 1)) if resampling else len(starts)
    for g0 in range(0, len(starts), group):
        g1 = min(len(starts), g0 + group)
        batch = np.concatenate([native_crop(c) for c in range(g0, g1)], axis=0)
        out[g0:g1, 0] = resample(batch, sample_rate, int(target)) if resampling else batch
    return out
