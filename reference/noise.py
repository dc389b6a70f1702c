"""pyannote's own float32 noise, per recording and stage: the yardstick of the verdict.

pyannote computes in float32. Recomputing a stage in float64 with pyannote's own
torch code tells how far pyannote's float32 result is from the exact value; a port
whose drift from pyannote is a small multiple of that is as exact as pyannote itself.

Two measurements per float name (see harness/compare.py for how they are used):

- ``isolated``: the stage in float64 on the reference's own dumped (float32) inputs;
  it is the yardstick for the port's stage run alone on those same inputs;
- ``chain``: the stages in float64 along the chain (audio -> resampling -> chunks ->
  segmentation; crops -> fbank -> embeddings), so that pyannote's float32 errors of
  earlier stages accumulate as a port's do when it runs end to end.

Stages measured: 01-audio (downmix + resampling), 02-chunks (slices of 01), 03
segmentation forward, 06 crops and fbank, 08 embedding forward (ResNet frames once
per chunk, pooled with each speaker's weights: `forward_frames` + `forward_embedding`),
09 the kept embeddings (chain); for community-1, 12-plda (chain: pyannote's own PLDA, a
per-row transform, on the float64 embeddings of the measured rows, and the largest of
their float32 errors carried through it at every kept row: `_plda_chain`). Not measured:
10-11, 13-15 and 3.1's 12 (linkage heights, VBx, centroids and soft scores need every
embedding, not a subset of chunks: VBx run with only the measured rows in float64
measured 6e-14 on ami_8k where the port's chain drift is 2.6e-4, a useless yardstick);
they keep fixed bounds.

Stored as ``noise.json`` beside the reference dump's manifest, keyed by the audio and
model checksums, so it is computed once per reference dump. Long recordings use a
subset of chunks (at most ``max_chunks`` of [tool.verify.noise]): evenly spaced chunks
plus, when a candidate dump is given, the chunks where its drift is largest, so the
noise is always measured where the drift is.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np

from harness.compare import NOISE_FILE, align_column_signs, column_signs, noise_rule
from port.dumps import DumpError, DumpReader

from . import models as reference_models

SAMPLE_RATE = 16000
CHUNKED = {"02-chunks": "out_chunks", "03-segmentation": "out_log_probs", "06-fbank": "out_fbank",
           "08-embeddings": "out_embeddings"}


def _stats(reference: np.ndarray, exact: np.ndarray, chunked: bool, q: float) -> dict:
    """max and q-th percentile of |float32 - float64|, and the max per chunk (for pictures)."""
    difference = np.abs(np.asarray(reference, dtype=np.float64) - np.asarray(exact, dtype=np.float64))
    out = {"max": float(difference.max()) if difference.size else 0.0,
           f"p{q:g}": float(np.percentile(difference, q)) if difference.size else 0.0}
    if chunked and difference.ndim >= 2:
        out["per_chunk_max"] = [float(x) for x in difference.reshape(len(difference), -1).max(axis=1)]
    return out


def _plda_drift_per_chunk(reference: DumpReader, candidate: DumpReader, num_chunks: int) -> list[np.ndarray]:
    """12-plda's drift (rows are kept embeddings) as each chunk's max, per name; columns
    compared up to their signs where the verdict compares them so (out_fea)."""
    if not (reference.has("09-filter", "out_chunk_idx") and reference.has("12-plda", "out_fea")):
        return []
    chunk_idx = np.asarray(reference.load("09-filter", "out_chunk_idx")).astype(int)
    drifts = []
    for name in ("out_xvec", "out_fea"):
        if not candidate.has("12-plda", name):
            continue
        a, b = np.asarray(reference.load("12-plda", name), np.float64), np.asarray(candidate.load("12-plda", name), np.float64)
        if a.shape != b.shape or a.ndim != 2 or len(a) != len(chunk_idx) or not a.size:
            continue
        if column_signs("12-plda", name):
            align_column_signs(a, b)
        per_row = np.nan_to_num(np.abs(a - b), nan=np.inf).max(axis=1)
        per_chunk = np.zeros(num_chunks)
        np.maximum.at(per_chunk, chunk_idx, per_row)
        drifts.append(per_chunk)
    return drifts


def _worst_chunks(reference: DumpReader, candidate: DumpReader | None, count: int) -> tuple[list[int], int]:
    """The chunks where the candidate's drift is largest, worst first, taking each float
    stage's worst in turn, latest stage first (so every stage's worst chunk comes before
    any second), and how many stages ranked them. Chunked stages rank by their chunks;
    12-plda (community-1) by the chunks its rows came from. A stage where the candidate
    does not drift at all ranks nothing."""
    if candidate is None:
        return [], 0
    drifts = []
    for stage, name in CHUNKED.items():
        if reference.has(stage, name) and candidate.has(stage, name):
            a, b = np.asarray(reference.load(stage, name), np.float64), np.asarray(candidate.load(stage, name), np.float64)
            if a.shape == b.shape and a.size:
                drifts.append(np.nan_to_num(np.abs(a - b), nan=np.inf).reshape(len(a), -1).max(axis=1))
    if drifts:
        drifts += _plda_drift_per_chunk(reference, candidate, len(drifts[0]))
    rankings = [[int(i) for i in np.argsort(d, kind="stable")[::-1][:count]] for d in reversed(drifts) if np.any(d > 0)]
    ordered: list[int] = []
    for rank in range(count):
        for ranking in rankings:
            if rank < len(ranking) and ranking[rank] not in ordered:
                ordered.append(ranking[rank])
    return ordered, len(rankings)


def choose_chunks(num_chunks: int, max_chunks: int, worst: list[int], stages: int = 1) -> list[int]:
    """All chunks when few; else the worst-drift chunks (worst first: every ranking stage's
    worst, and up to half) plus evenly spaced ones (first and last included)."""
    if num_chunks <= max_chunks:
        return list(range(num_chunks))
    chosen = set(worst[: max(max_chunks // 2, stages, 1)])
    spaced = np.linspace(0, num_chunks - 1, max(max_chunks - len(chosen), 2)).round().astype(int)
    chosen.update(int(i) for i in spaced)
    return sorted(chosen)


def measure(reference_dir: str | Path, segmentation, embedding, candidate_dir: str | Path | None = None,
            max_chunks: int | None = None) -> dict:
    """Recompute the float stages in float64 with pyannote's torch code; {stage: {mode: {name: stats}}}."""
    import torch
    from pyannote.audio.core.io import Audio
    from pyannote.core import Segment

    reference = DumpReader(reference_dir)
    candidate = DumpReader(candidate_dir) if candidate_dir and (Path(candidate_dir) / "manifest.json").is_file() else None
    rule = noise_rule()
    q, max_chunks = float(rule["percentile"]), int(max_chunks or rule["max_chunks"])
    stages: dict = {}

    def put(stage, mode, name, ref, exact, chunked=False):
        stages.setdefault(stage, {}).setdefault(mode, {})[name] = _stats(ref, exact, chunked, q)

    audio = Audio(sample_rate=SAMPLE_RATE, mono="downmix")
    native = torch.from_numpy(np.asarray(reference.load("01-audio", "in_waveform"), dtype=np.float64))
    rate = int(reference.load("01-audio", "in_sample_rate"))
    with torch.inference_mode():
        # 01: downmix + resampling (torchaudio), in float64
        waveform64 = audio.downmix_and_resample(native, rate)[0]
        for mode in ("isolated", "chain"):
            put("01-audio", mode, "out_waveform", reference.load("01-audio", "out_waveform"), waveform64.numpy())
        if not reference.names("02-chunks"):
            return {"stages": stages, "chunks": [], "num_chunks": 0}

        ref_chunks = np.asarray(reference.load("02-chunks", "out_chunks"))
        num_chunks, _, window = ref_chunks.shape
        step = int(round(10.0 * float(reference.manifest.get("parameters", {}).get("segmentation_step", 0.1)) * SAMPLE_RATE))
        worst, ranked = _worst_chunks(reference, candidate, 4)
        chosen = choose_chunks(num_chunks, max_chunks, worst, ranked)
        index = np.asarray(chosen)

        # 02: chunks are slices of 01's waveform, the last one zero-padded (Inference.slide)
        flat = waveform64.numpy()[0]
        chunks64 = np.zeros((len(chosen), 1, window))
        for row, i in enumerate(chosen):
            piece = flat[i * step : i * step + window]
            chunks64[row, 0, : len(piece)] = piece
        put("02-chunks", "chain", "out_chunks", ref_chunks[index], chunks64, chunked=True)

        # 03: segmentation forward in float64, on the reference's chunks and on the float64 chain
        model = copy.deepcopy(segmentation).cpu().double().eval()
        ref_log_probs = np.asarray(reference.load("03-segmentation", "out_log_probs"))[index]
        isolated = model(torch.from_numpy(ref_chunks[index].astype(np.float64))).numpy()
        put("03-segmentation", "isolated", "out_log_probs", ref_log_probs, isolated, chunked=True)
        chain = isolated if rate == SAMPLE_RATE and native.shape[0] == 1 else model(torch.from_numpy(chunks64)).numpy()
        put("03-segmentation", "chain", "out_log_probs", ref_log_probs, chain, chunked=True)
        del model

        if not reference.names("06-fbank"):
            return {"stages": stages, "chunks": chosen, "num_chunks": num_chunks}

        # 06: per-chunk crops (Audio.crop, mode="pad") and fbank (compute_fbank), float64
        ref_crops = np.asarray(reference.load("06-fbank", "out_waveforms"))[index]
        file = {"waveform": native, "sample_rate": rate}
        duration = window / SAMPLE_RATE
        crops64 = np.stack([
            audio.crop(file, Segment(i * step / SAMPLE_RATE, i * step / SAMPLE_RATE + duration), mode="pad")[0].numpy()
            for i in chosen
        ])
        for mode in ("isolated", "chain"):
            put("06-fbank", mode, "out_waveforms", ref_crops, crops64, chunked=True)
        emb = copy.deepcopy(embedding).cpu().double().eval()
        ref_fbank = np.asarray(reference.load("06-fbank", "out_fbank"))[index]
        fbank_iso = emb.compute_fbank(torch.from_numpy(ref_crops.astype(np.float64)))
        put("06-fbank", "isolated", "out_fbank", ref_fbank, fbank_iso.numpy(), chunked=True)
        fbank_chain = emb.compute_fbank(torch.from_numpy(crops64))
        put("06-fbank", "chain", "out_fbank", ref_fbank, fbank_chain.numpy(), chunked=True)

        # 08: ResNet frames once per chunk, pooled with each speaker's mask (pyannote's
        # forward_frames + forward_embedding: what forward(waveforms, weights) computes)
        masks = torch.from_numpy(np.asarray(reference.load("07-masks", "out_masks"))[index].astype(np.float64))
        ref_embeddings = np.asarray(reference.load("08-embeddings", "out_embeddings"))[index]

        def embed(fbank):
            return emb.resnet.forward_embedding(emb.resnet.forward_frames(fbank), weights=masks)[1].numpy()

        put("08-embeddings", "isolated", "out_embeddings", ref_embeddings, embed(torch.from_numpy(ref_fbank.astype(np.float64))), chunked=True)
        chain_embeddings = embed(fbank_chain)
        put("08-embeddings", "chain", "out_embeddings", ref_embeddings, chain_embeddings, chunked=True)

        # 09: the kept embeddings are copies of 08's (exact when isolated); in a chain they
        # carry 08's noise: the kept rows of the measured chunks
        if reference.has("09-filter", "out_chunk_idx"):
            chunk_idx = np.asarray(reference.load("09-filter", "out_chunk_idx"))
            speaker_idx = np.asarray(reference.load("09-filter", "out_speaker_idx"))
            position = {c: r for r, c in enumerate(chosen)}
            rows = [k for k, c in enumerate(chunk_idx) if int(c) in position]
            if rows:
                kept = np.asarray(reference.load("09-filter", "out_embeddings"))[rows]
                exact = chain_embeddings[[position[int(chunk_idx[k])] for k in rows], speaker_idx[rows]]
                put("09-filter", "chain", "out_embeddings", kept, exact)
                if reference.has("12-plda", "out_fea"):
                    _plda_chain(reference, rows, exact, put)
    return {"stages": stages, "chunks": chosen, "num_chunks": num_chunks}


def _plda_chain(reference: DumpReader, rows: list[int], exact: np.ndarray, put, carried: int = 4) -> None:
    """community-1's chain noise at 12-plda with pyannote's own PLDA (a per-row transform).

    The PLDA's gain differs from row to row (an embedding near the training mean is
    amplified most), so the float32 errors of the few measured rows alone are a poor
    yardstick for the rows where a port drifts: measured on AMI trn03 (fixture models),
    the port's worst row there is 3.4x the measured rows' noise while its embeddings are
    within 1.5x of pyannote's noise and its PLDA is bit-identical. So the noise is
    pyannote's measured embedding errors carried through pyannote's PLDA at every row:
    the measured rows' own errors (their float64 embeddings through the PLDA), and the
    `carried` largest measured error vectors applied to every kept embedding."""
    from .run import community1_plda

    plda = community1_plda((reference.manifest.get("plda") or {}).get("folder"))
    kept = np.asarray(reference.load("09-filter", "out_embeddings"), dtype=np.float64)
    errors = kept[rows] - exact  # pyannote's float32 error of each measured row
    largest = errors[np.argsort(np.linalg.norm(errors, axis=1), kind="stable")[::-1][:carried]]
    base = np.concatenate([kept[rows]] + [kept] * len(largest))
    truth = np.concatenate([exact] + [kept - error for error in largest])
    put("12-plda", "chain", "out_xvec", plda._xvec_tf(base), plda._xvec_tf(truth))
    put("12-plda", "chain", "out_fea", plda(base), plda(truth))


def ensure(reference_dir: str | Path, segmentation, embedding, candidate_dir: str | Path | None = None,
           max_chunks: int | None = None) -> Path:
    """noise.json beside the reference dump: measured once per audio and models, reused after."""
    reference = DumpReader(reference_dir)
    keys = {
        "audio_sha256": reference.manifest.get("audio_sha256"),
        "segmentation_sha256": reference_models.checksum(segmentation),
        "embedding_sha256": reference_models.checksum(embedding),
    }
    for key in ("segmentation_sha256", "embedding_sha256"):
        if reference.manifest.get(key) not in (None, keys[key]):
            raise DumpError(f"{reference.path}: dumped with other {key.split('_')[0]} weights than the models given")
    path = reference.path / NOISE_FILE
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
            if all(stored.get(k) == v for k, v in keys.items()):
                return path
        except json.JSONDecodeError:
            pass
    measured = measure(reference_dir, segmentation, embedding, candidate_dir, max_chunks)
    chunks, total = measured["chunks"], measured["num_chunks"]
    note = "all chunks" if len(chunks) == total else f"{len(chunks)} of {total} chunks (evenly spaced + worst drift)"
    payload = {**keys, "chunks_note": note, **measured}
    tmp = path.with_name(f".{NOISE_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def mel_banks(num_bins: int, window_length_padded: int, sample_freq: float, low_freq: float, high_freq: float,
              dtype: str = "float32") -> np.ndarray:
    """torchaudio's own `get_mel_banks` (as pyannote's fbank calls it), built in float32 as
    torch does by default, or in float64: their difference is torch's own float32 noise."""
    import torch
    from torchaudio.compliance import kaldi

    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        banks, _ = kaldi.get_mel_banks(num_bins, window_length_padded, sample_freq, low_freq, high_freq, 100.0, -500.0, 1.0)
    finally:
        torch.set_default_dtype(previous)
    return banks.numpy()
