"""The port's GPU settings, swept: which ONNX Runtime CUDA options, batch sizes and fbank
backend make an hour fastest, RTTMs compared to the first configuration's.

    .venv/bin/python benchmarks/gpu_sweep.py [AUDIO] [--device cuda] [--repeat 2] [--json out.json]
        [--pipeline 3.1] [--batches 32,64,128,256] [--long-minutes 60] [--precision fast] [--only-long] [--dry-run]

Each configuration builds its own sessions (provider options apply at session creation,
through $PYANNOTE_PORT_CUDA_OPTIONS, port/runtime.py), warms up once on AUDIO and
counts the best of --repeat runs (wall seconds, end to end, the port alone; speed.py
has pyannote and the floor). Axes, one at a time from the default (fbank graph on
CUDA, numpy on a CPU; batch 32; ONNX Runtime's default EXHAUSTIVE cuDNN search; arena
kNextPowerOfTwo without limit):

* fbank: numpy | graph (the graph: crops -> fbank -> trunk -> head through IOBinding);
* cudnn_conv_algo_search: EXHAUSTIVE | HEURISTIC | DEFAULT;
* batch: segmentation and embedding batch sizes (--batches);
* arena: arena_extend_strategy kSameAsRequested, and gpu_mem_limit 8 GiB;
* cuda_graph: the ResNet trunk alone through IOBinding with fixed input/output
  buffers, enable_cuda_graph 0 vs 1 (the whole pipeline cannot use CUDA graphs: its
  batches change shape at the recording's end and its ops are not all on CUDA);
* segmentation_host: the segmentation on the host's CPU (all cores), the embeddings on
  CUDA: whether the exact LSTM's Scan (many small sequential steps) is faster there.

--precision fast: every configuration in the fast mode (port/runtime.py: fast_graphs);
--only-long: no sweep, only the --long-minutes run.

--long-minutes N: then the default configuration, warm (after the sample), on N minutes of
AMI cycled (benchmarks/common.py): the issue's line is an hour in 5 s or less on CUDA.

On a CPU (--device cpu, what `gpu.sh --dry-run` runs) the CUDA-only axes are listed
as skipped, so the table's shape is the same. TF32 stays off throughout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
from common import SAMPLE, ami_sources, build_long_recording, fixture_export

from port import runtime
from port.pipeline import Pipeline

CUDA_ONLY = ("cudnn_conv_algo_search", "arena", "cuda_graph", "segmentation_host")


def configurations(device: str, batches: list[int]) -> list[dict]:
    gpu = device == "cuda"
    default_fbank = "graph" if gpu else "numpy"
    rows = [{"axis": "default", "fbank": default_fbank, "batch": 32, "cuda": {}}]
    rows.append({"axis": "fbank", "fbank": "numpy" if gpu else "graph", "batch": 32, "cuda": {}})
    for search in ("HEURISTIC", "DEFAULT"):
        rows.append({"axis": "cudnn_conv_algo_search", "fbank": default_fbank, "batch": 32,
                     "cuda": {"cudnn_conv_algo_search": search}})
    for batch in batches:
        if batch != 32:
            rows.append({"axis": "batch", "fbank": default_fbank, "batch": batch, "cuda": {}})
    rows.append({"axis": "arena", "fbank": default_fbank, "batch": 32,
                 "cuda": {"arena_extend_strategy": "kSameAsRequested"}})
    rows.append({"axis": "arena", "fbank": default_fbank, "batch": 32, "cuda": {"gpu_mem_limit": str(8 << 30)}})
    rows.append({"axis": "segmentation_host", "fbank": default_fbank, "batch": 32, "cuda": {}, "segmentation_device": "cpu"})
    return rows


def _pipeline_kwargs(pipeline: str) -> dict | None:
    """from_folder's arguments for `pipeline` (None: this port has no such pipeline)."""
    from port.pipeline import Parameters

    try:
        return {"parameters": Parameters(pipeline=pipeline)}
    except ValueError:
        return None


def run_configuration(folder: Path, audio: Path, device: str, config: dict, repeat: int, extra: dict) -> dict:
    os.environ[runtime.CUDA_OPTIONS_ENV] = json.dumps(config["cuda"])
    try:
        pipeline = Pipeline.from_folder(folder, device=device, fbank=config["fbank"],
                                        segmentation_batch=config["batch"], embedding_batch=config["batch"], **extra)
        if config.get("segmentation_device"):  # the same graph on another provider
            from port.segmentation import Segmentation

            pipeline.segmentation = Segmentation(pipeline.segmentation.path, device=config["segmentation_device"],
                                                 batch_size=config["batch"], threads=os.cpu_count())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipeline(audio)  # warm-up: cuDNN's algorithm search, arenas
            times, rttm = [], None
            for _ in range(repeat):
                began = time.perf_counter()
                result = pipeline(audio)
                times.append(time.perf_counter() - began)
                rttm = result.rttm
        return {**config, "seconds": min(times), "runs": times, "rttm": rttm,
                "providers": pipeline.providers, "fbank_backend": pipeline.embedding.fbank_backend}
    except Exception as error:  # one configuration ONNX Runtime refuses is a row, not the end
        return {**config, "error": f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"}
    finally:
        os.environ.pop(runtime.CUDA_OPTIONS_ENV, None)


def long_run(folder: Path, audio: Path, device: str, minutes: float, extra: dict) -> dict:
    """The default configuration on `minutes` of cycled AMI, warm (one run on `audio` first)."""
    import tempfile

    try:
        pipeline = Pipeline.from_folder(folder, device=device, **extra)
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = build_long_recording(minutes * 60.0, Path(tmp) / f"ami-{minutes:g}min.wav", ami_sources())
            pipeline(audio)
            began = time.perf_counter()
            result = pipeline(path)
            seconds = time.perf_counter() - began
        return {"minutes": minutes, "seconds": seconds, "fbank_backend": pipeline.embedding.fbank_backend,
                "num_speakers": result.num_speakers, "stages": result.seconds}
    except Exception as error:
        return {"minutes": minutes, "error": f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"}


def trunk_cuda_graph(folder: Path, device: str, batch: int, repeat: int = 20) -> list[dict]:
    """The trunk alone through IOBinding on fixed buffers, with and without CUDA graphs."""
    ort = runtime._onnxruntime()
    rows = []
    meta = runtime.metadata(runtime.session(folder / "embedding-trunk.onnx", device="cpu"))
    rng = np.random.default_rng(0)
    fbank = rng.standard_normal((batch, meta["fbank_frames"], meta["fbank"]["num_mel_bins"])).astype(np.float32)
    where = "cuda" if device == "cuda" else "cpu"
    for graph in ((0, 1) if device == "cuda" else (0,)):
        try:
            options = ort.SessionOptions()
            options.log_severity_level = 3
            cuda = {"device_id": "0", "use_tf32": "0", "enable_cuda_graph": str(graph)}
            providers = [("CUDAExecutionProvider", cuda)] if device == "cuda" else ["CPUExecutionProvider"]
            sess = ort.InferenceSession(str(folder / "embedding-trunk.onnx"), options, providers=providers)
            x = ort.OrtValue.ortvalue_from_numpy(fbank, where, 0)
            out_shape = [batch, *meta["trunk_shape"]]
            y = ort.OrtValue.ortvalue_from_shape_and_type(out_shape, np.float32, where, 0)
            binding = sess.io_binding()
            binding.bind_ortvalue_input("fbank", x)
            binding.bind_ortvalue_output("frames", y)
            sess.run_with_iobinding(binding)  # warm-up (captures the graph)
            times = []
            for _ in range(repeat if device == "cuda" else 2):
                x.update_inplace(fbank)
                began = time.perf_counter()
                sess.run_with_iobinding(binding)
                binding.synchronize_outputs()
                times.append(time.perf_counter() - began)
            rows.append({"axis": "cuda_graph", "enable_cuda_graph": graph, "batch": batch,
                         "seconds_per_chunk": min(times) / batch, "checksum": float(np.abs(y.numpy()).sum())})
        except Exception as error:
            rows.append({"axis": "cuda_graph", "enable_cuda_graph": graph, "batch": batch,
                         "error": f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio", nargs="?", type=Path, default=SAMPLE)
    parser.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--pipeline", default="3.1")
    parser.add_argument("--batches", default="32,64,128,256")
    parser.add_argument("--models", type=Path, help="export folder (default: the fixture models' export)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--long-minutes", type=float, default=0.0, help="then the default, warm, on that many minutes")
    parser.add_argument("--precision", choices=["exact", "fast"], default="exact", help="the port's mode")
    parser.add_argument("--only-long", action="store_true", help="no sweep: only the --long-minutes run")
    parser.add_argument("--dry-run", action="store_true", help="CPU-sized: batches 32 only, one repeat")
    args = parser.parse_args(argv)
    if args.dry_run:
        args.repeat, args.batches = 1, "32"
    batches = [int(b) for b in args.batches.split(",") if b]
    folder = args.models or fixture_export(fast=args.precision == "fast")
    extra = _pipeline_kwargs(args.pipeline)
    if extra is not None:
        extra["precision"] = args.precision
    report = {"device": args.device, "pipeline": args.pipeline, "precision": args.precision, "audio": str(args.audio),
              "repeat": args.repeat, "machine": platform.processor() or platform.machine(), "rows": []}
    if extra is None:
        report["skipped"] = f"this port's Pipeline.from_folder has no pipeline option (asked for {args.pipeline})"
        print(report["skipped"])
    else:
        for config in [] if args.only_long else configurations(args.device, batches):
            if args.device != "cuda" and config["axis"] in CUDA_ONLY:
                report["rows"].append({**config, "skipped": "CUDA only"})
                continue
            report["rows"].append(run_configuration(folder, args.audio, args.device, config, args.repeat, extra))
        if not args.only_long:
            report["rows"] += trunk_cuda_graph(folder, args.device, batch=32 if args.device == "cuda" else 2)
        if args.long_minutes > 0:
            report["long"] = long_run(folder, args.audio, args.device, args.long_minutes, extra)
        first = next((r.get("rttm") for r in report["rows"] if r.get("rttm") is not None), None)
        for row in report["rows"]:
            if "rttm" in row:
                row["rttm_identical"] = row.pop("rttm") == first
    print(f"{'axis':<24}{'setting':<34}{'seconds':>9}  RTTM")
    for row in report["rows"]:
        setting = ", ".join([f"fbank {row['fbank']}" if "fbank" in row else "", f"batch {row['batch']}",
                             *(f"{k}={v}" for k, v in row.get("cuda", {}).items()),
                             *([f"enable_cuda_graph={row['enable_cuda_graph']}"] if "enable_cuda_graph" in row else [])]).strip(", ")
        if "error" in row or "skipped" in row:
            print(f"{row['axis']:<24}{setting[:33]:<34}{'-':>9}  {row.get('error') or row['skipped']}")
        elif "seconds_per_chunk" in row:
            print(f"{row['axis']:<24}{setting[:33]:<34}{row['seconds_per_chunk']:>9.4f}  (trunk alone, s per chunk)")
        else:
            print(f"{row['axis']:<24}{setting[:33]:<34}{row['seconds']:>9.3f}  {'identical' if row['rttm_identical'] else 'DIFFERS'}")
    if report.get("long"):
        long = report["long"]
        print(f"{long['minutes']:g} minutes, warm: " + (f"{long['seconds']:.2f} s" if "seconds" in long else long["error"]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if any(r.get("rttm_identical") is False for r in report["rows"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
