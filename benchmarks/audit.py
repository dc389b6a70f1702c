#!/usr/bin/env python3
"""Per-layer precision audit: which layer of the exported graph is less exact than pyannote?

    python benchmarks/audit.py tests/data/ami_stereo_5s.wav                  # segmentation, fixture models
    python benchmarks/audit.py --model embedding tests/data/sample.wav        # ResNet trunk and head
    python benchmarks/audit.py --segmentation pretrained --chunks 2 FILE --json audit.json
    python benchmarks/audit.py --onnx-dir models/<folder> FILE                # an existing export
    python benchmarks/audit.py --onnx-lstm FILE                               # ONNX Runtime's LSTM op (exporter v2)

For each layer (torch submodule) it shows ONNX Runtime's float32 error and torch's
float32 error, both against the same module in float64, their ratio (max and 99th
percentile) and where ONNX Runtime's error is largest (chunk, channel, time), and names
the first layer whose ratio is over 2 (library: reference/audit.py). Exit 0 when no
layer is over 2, 1 when one is, 2 on bad input (one line).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import REPO  # noqa: F401  (puts the repository on sys.path)


def _models(args):
    from reference import models

    segmentation = models.load("segmentation", args.segmentation)
    embedding = models.load("embedding", args.embedding)
    return segmentation, embedding


def _chunks(path: Path, max_chunks: int):
    from port import audio
    from reference import audit

    waveform, rate = audio.load(path)
    waveform, _ = audio.downmix_and_resample(waveform, rate, 16000)
    return audit.chunks_of(waveform[0], 16000, 160000, max_chunks)


def _table(console, title: str, layers, first) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in ("layer", "ORT error", "torch error", "ratio", "ratio p99", "where (chunk, ...)"):
        table.add_column(column, justify="left" if column == "layer" else "right", no_wrap=True)
    for layer in layers:
        over = layer.ratio > 2 or layer.ratio_p99 > 2
        style = "bold red" if layer is first else ("red" if over else None)
        table.add_row(layer.layer, f"{layer.ort_error:.2e}", f"{layer.torch_error:.2e}", f"{layer.ratio:.2f}",
                      f"{layer.ratio_p99:.2f}", ",".join(map(str, layer.where)), style=style)
    console.print(table)
    console.print(f"first layer over 2x: {first.layer} ({first.ratio:.1f}x)" if first else "no layer over 2x")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("audio", nargs="+")
    parser.add_argument("--model", choices=["segmentation", "embedding", "both"], default="segmentation")
    parser.add_argument("--segmentation", default="fixture", help="fixture, pretrained, or a checkpoint / ONNX path")
    parser.add_argument("--embedding", default="fixture")
    parser.add_argument("--onnx-dir", help="an export folder (default: export the models into models/, cached)")
    parser.add_argument("--onnx-lstm", action="store_true",
                        help="export the segmentation LSTM as ONNX Runtime's LSTM op (exporter v2's graph) instead of "
                             "the exact Scan (reference/export.py: exact_lstms)")
    parser.add_argument("--chunks", type=int, default=2, help="chunks per recording (float64 torch is slow)")
    parser.add_argument("--json", help="write the tables as JSON")
    args = parser.parse_args(argv)

    from rich.console import Console

    console = Console(width=max(110, Console().width))
    paths = [Path(p) for p in args.audio]
    missing = next((p for p in paths if not p.is_file()), None)
    if missing is not None or args.chunks < 1:  # before torch is imported: bad input answers at once
        print(f"error: {f'audio not found: {missing}' if missing else '--chunks must be at least 1'}", file=sys.stderr)
        return 2
    try:
        from port.audio import AudioError
        from reference import audit, export
        from reference.models import ModelError

        segmentation, embedding = _models(args)
        if args.onnx_dir:
            folder = Path(args.onnx_dir)
            if not (folder / "segmentation.onnx").is_file():
                raise ValueError(f"{folder}: no segmentation.onnx there")
        else:
            folder = export.export(segmentation, embedding, exact_lstm=not args.onnx_lstm)["segmentation"].parent
        chunks = {path: _chunks(path, args.chunks) for path in paths}
    except (ValueError, OSError, AudioError, ModelError, export.ExportError) as error:
        print(f"error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2

    results, failed = {}, False
    for path, data in chunks.items():
        graphs = {}
        if args.model in ("segmentation", "both"):
            graphs["segmentation"] = audit.audit_segmentation(segmentation, folder / "segmentation.onnx", data)
        if args.model in ("embedding", "both"):
            graphs.update(audit.audit_embedding(embedding, folder / "embedding-trunk.onnx",
                                                folder / "embedding-head.onnx", data))
        results[path.name] = {}
        for graph, layers in graphs.items():
            first = audit.first_over(layers)
            failed |= first is not None
            _table(console, f"{path.name}: {graph} ({folder.name}, {len(data)} chunk(s))", layers, first)
            results[path.name][graph] = audit.as_json(layers)
    if args.json:
        Path(args.json).write_text(json.dumps({"export": str(folder), "segmentation": args.segmentation,
                                               "embedding": args.embedding, "recordings": results}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
