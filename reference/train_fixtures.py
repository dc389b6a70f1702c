"""Make the fixture weights committed in reference/fixtures/ (tests never train).

    .venv/bin/python -m reference.train_fixtures [--steps 300] [--seed 0]

Fixture models are test fixtures, not pyannote's pretrained models. Seeded random
weights are degenerate (every frame gets the same powerset class), so both models
are trained briefly on the bundled recordings until they react to speech:

* segmentation (segmentation-3.0's PyanNet): every weight trained with Adam on
  random 10 s crops of pyannote's sample (labels from sample.rttm), crops of the
  two test recordings (energy-VAD labels, one speaker each) and mixtures of both,
  with a permutation-invariant powerset loss.
* embedding (WeSpeaker ResNet34): convolutions keep numpy-seeded He-normal values
  (regenerated at load time, not stored); batch-norm statistics are calibrated on
  the recordings, then the final projection `seg_1` is trained with a cosine-softmax
  loss over four speakers (the sample's two, one per test recording) on statistics
  pooled exactly as the pipeline pools them (10 s chunks, per-speaker frame masks).

Every seed is fixed; thread scheduling can still change the last bits when this is
re-run elsewhere, which is why the outputs are committed rather than regenerated.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from . import models

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
SAMPLE_RATE = 16000
CHUNK = 10 * SAMPLE_RATE


def read_rttm(path: Path) -> dict[str, list[tuple[float, float]]]:
    turns: dict[str, list[tuple[float, float]]] = {}
    for line in path.read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "SPEAKER":
            start, duration = float(fields[3]), float(fields[4])
            turns.setdefault(fields[7], []).append((start, start + duration))
    return turns


def energy_vad(waveform: np.ndarray, min_on: float = 0.2, min_off: float = 0.3) -> list[tuple[float, float]]:
    """Rough speech regions: 10 ms frame energy above the midpoint (in dB) of the
    file's 10th and 95th percentiles, short gaps filled, short bursts dropped."""
    hop = SAMPLE_RATE // 100
    n = len(waveform) // hop
    energy = 10 * np.log10(np.mean(waveform[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-10)
    low, high = np.percentile(energy, [10, 95])
    active = energy > (low + high) / 2
    regions, start = [], None
    for i, a in enumerate(np.append(active, False)):
        if a and start is None:
            start = i
        elif not a and start is not None:
            regions.append([start / 100, i / 100])
            start = None
    merged: list[list[float]] = []
    for region in regions:
        if merged and region[0] - merged[-1][1] < min_off:
            merged[-1][1] = region[1]
        else:
            merged.append(region)
    return [(s, e) for s, e in merged if e - s >= min_on]


def load_sources() -> list[dict]:
    """Each source: waveform at 16 kHz and {speaker: [(start, end), ...]} in seconds."""
    import soundfile as sf
    import torch
    import torchaudio

    sources = []
    sample, _ = sf.read(DATA / "sample.wav", dtype="float32")
    sources.append({"waveform": sample, "turns": read_rttm(DATA / "sample.rttm")})
    for name, speaker in (("test_16k.wav", "test16k"), ("test_with_noise_48k.wav", "test48k")):
        waveform, rate = sf.read(DATA / name, dtype="float32")
        if rate != SAMPLE_RATE:
            waveform = torchaudio.functional.resample(torch.from_numpy(waveform), rate, SAMPLE_RATE).numpy()
        sources.append({"waveform": waveform, "turns": {speaker: energy_vad(waveform)}})
    return sources


def frame_labels(turns: dict, offset: float, frames, num_frames: int, speakers: list[str]) -> np.ndarray:
    """(num_frames, len(speakers)) 0/1: frame i is active when its middle lies in a turn."""
    middles = offset + frames.start + np.arange(num_frames) * frames.step + frames.duration / 2
    labels = np.zeros((num_frames, len(speakers)), dtype=np.float32)
    for k, speaker in enumerate(speakers):
        for start, end in turns.get(speaker, []):
            labels[(middles >= start) & (middles < end), k] = 1.0
    return labels


def random_crop(rng, source: dict, frames, num_frames: int, length: int = CHUNK, tail: bool = False):
    """A crop of `length` samples and its labels; `tail`: the end of the source,
    zero-padded like the pipeline's last chunk."""
    waveform = source["waveform"]
    if tail:
        start = len(waveform) - int(rng.integers(length // 4, length))
    else:
        start = int(rng.integers(0, max(1, len(waveform) - length)))
    crop = np.zeros(length, dtype=np.float32)
    piece = waveform[start : start + length]
    crop[: len(piece)] = piece
    speakers = sorted(source["turns"])
    labels = frame_labels(source["turns"], start / SAMPLE_RATE, frames, num_frames, speakers)
    return crop, labels, speakers


def segmentation_batch(rng, sources, frames, num_frames, batch_size):
    """Random crops, single sources or mixtures, with up to 3 local speakers."""
    waveforms, targets = [], []
    for _ in range(batch_size):
        kind = rng.random()
        crop, labels, speakers = random_crop(rng, sources[0 if kind < 0.6 else int(rng.integers(1, 3))], frames, num_frames)
        if kind >= 0.85:
            # overlay a 2-5 s excerpt of another source: a third voice and some overlap
            other = sources[0]
            extra, extra_labels, extra_speakers = random_crop(rng, other, frames, num_frames)
            span = int(rng.integers(2 * SAMPLE_RATE, 5 * SAMPLE_RATE))
            at = int(rng.integers(0, CHUNK - span))
            gain = float(rng.uniform(0.5, 1.0))
            crop = crop.copy()
            crop[at : at + span] += gain * extra[at : at + span]
            keep = np.zeros(num_frames, dtype=np.float32)
            keep[int(at / CHUNK * num_frames) : int((at + span) / CHUNK * num_frames)] = 1.0
            labels = np.concatenate([labels, extra_labels * keep[:, None]], axis=1)
        # keep the (at most 3) most active speakers, in random order
        order = np.argsort(-labels.sum(axis=0), kind="stable")[:3]
        labels = labels[:, rng.permutation(order)]
        if labels.shape[1] < 3:
            labels = np.pad(labels, ((0, 0), (0, 3 - labels.shape[1])))
        waveforms.append(crop)
        targets.append(labels)
    return np.stack(waveforms)[:, None], np.stack(targets)


def train_segmentation(steps: int, seed: int) -> None:
    import torch
    from pyannote.audio.utils.powerset import Powerset

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = models.segmentation_architecture()
    frames = model.receptive_field
    num_frames = model.num_frames(CHUNK)
    powerset = Powerset(3, 2)
    permutations = list(itertools.permutations(range(3)))
    sources = load_sources()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    began = time.time()
    for step in range(1, steps + 1):
        waveforms, targets = segmentation_batch(rng, sources, frames, num_frames, batch_size=8)
        log_probs = model(torch.from_numpy(waveforms))
        targets = torch.from_numpy(targets)
        losses = []
        for permutation in permutations:
            classes = powerset.to_powerset(targets[:, :, list(permutation)]).argmax(dim=-1)
            nll = torch.nn.functional.nll_loss(log_probs.transpose(1, 2), classes, reduction="none")
            losses.append(nll.mean(dim=1))
        loss = torch.stack(losses).min(dim=0).values.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 25 == 0 or step == 1:
            print(f"segmentation step {step:4d}  loss {loss.item():.3f}  {time.time() - began:6.1f}s", flush=True)
    model.eval()
    meta = {"seed": seed, "steps": steps, "final_loss": round(float(loss.item()), 4), "trained": "all weights"}
    models.save_fixture(model, models.SEGMENTATION_FIXTURE, meta)


def embedding_examples(rng, sources, count: int):
    """10 s chunks and, for each speaker active >= 1 s in it, that speaker's frame mask."""
    num_frames = 589
    from pyannote.core import SlidingWindow

    frames = SlidingWindow(start=0.0, duration=CHUNK / SAMPLE_RATE / num_frames, step=CHUNK / SAMPLE_RATE / num_frames)
    speakers = sorted({s for source in sources for s in source["turns"]})
    chunks, pairs = [], []
    for c in range(count):
        source = sources[c % len(sources)]
        crop, labels, local = random_crop(rng, source, frames, num_frames, tail=c % 5 == 4)
        overlap = labels.sum(axis=1, keepdims=True) > 1
        clean = labels * ~overlap
        for k, speaker in enumerate(local):
            if clean[:, k].sum() >= num_frames / 10:
                pairs.append((len(chunks), clean[:, k], speakers.index(speaker)))
        chunks.append(crop)
    return np.stack(chunks), pairs, speakers


def train_embedding(steps: int, seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    model = models.embedding_architecture()
    seeded = models.seeded_convolutions(model)
    sources = load_sources()
    chunks, pairs, speakers = embedding_examples(rng, sources, count=240)
    waveforms = torch.from_numpy(chunks)[:, None]

    # 1. calibrate batch-norm statistics (cumulative average over all chunks)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    with torch.no_grad():
        for batch in waveforms.split(8):
            model.resnet.forward_frames(model.compute_fbank(batch))
    model.eval()

    # 2. frame features once (eval mode), then train seg_1 on masked statistics pooling
    with torch.inference_mode():
        features = torch.cat([model.resnet.forward_frames(model.compute_fbank(b)) for b in waveforms.split(8)])
    features = features.clone()
    chunk_index = torch.tensor([p[0] for p in pairs])
    masks = torch.from_numpy(np.stack([p[1] for p in pairs]))
    classes = torch.tensor([p[2] for p in pairs])
    head = model.resnet.seg_1
    centres = torch.nn.Parameter(torch.randn(len(speakers), head.out_features))
    optimizer = torch.optim.AdamW(list(head.parameters()) + [centres], lr=1e-3, weight_decay=1e-2)
    began = time.time()
    for step in range(1, steps + 1):
        batch = torch.from_numpy(rng.choice(len(pairs), size=min(32, len(pairs)), replace=False))
        embeddings = model.resnet.forward_embedding(features[chunk_index[batch]], weights=masks[batch])[1]
        cosine = torch.nn.functional.normalize(embeddings, dim=1) @ torch.nn.functional.normalize(centres, dim=1).T
        loss = torch.nn.functional.cross_entropy(10.0 * cosine, classes[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == 1:
            print(f"embedding step {step:4d}  loss {loss.item():.3f}  {time.time() - began:6.1f}s", flush=True)
    meta = {
        "seed": seed,
        "conv_seed": models.EMBEDDING_CONV_SEED,
        "steps": steps,
        "speakers": speakers,
        "final_loss": round(float(loss.item()), 4),
        "trained": "batch-norm statistics (calibrated) and resnet.seg_1; convolutions seeded, not stored",
    }
    models.save_fixture(model, models.EMBEDDING_FIXTURE, meta, skip=seeded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600, help="segmentation Adam steps")
    parser.add_argument("--embedding-steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["segmentation", "embedding"])
    args = parser.parse_args()
    models.FIXTURES.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "segmentation"):
        train_segmentation(args.steps, args.seed)
    if args.only in (None, "embedding"):
        train_embedding(args.embedding_steps, args.seed)


if __name__ == "__main__":
    main()
