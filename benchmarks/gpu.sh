#!/usr/bin/env bash
# The GPU path, measured: one prepared command for one NVIDIA GPU (estimated ~9 minutes on an H100).
#
#     benchmarks/gpu.sh [--dry-run] [--out DIR] [--wheels DIR]
#
# 1. set-up: the README's venv (.venv, '.[reference,test]') unless it is there already;
#    or, on an offline machine whose Python already has torch (PY=python3), --wheels DIR:
#    the wheels in DIR (and *.tar.xz unpacked wheels) go into DIR/site, put on PYTHONPATH
#    (pip --no-index --no-deps). CUDA's libraries from the nvidia-* pip packages go on
#    LD_LIBRARY_PATH, for onnxruntime's CUDA provider in processes that import no torch.
# 2. verify.py run --device cuda --fbank graph on the sample and two AMI excerpts ($AMI
#    or ../shared/audio/ami; else the two bundled in tests/data): pyannote on CUDA
#    (TF32 off, see reference/run.py) against the port on ONNX Runtime's CUDA provider,
#    fbank as a graph on the device, every stage compared; for each pipeline
#    (--pipeline 3.1 and community-1, when verify.py has the option; the second on
#    the sample only), else today's pipeline
#    then verify.py run --precision fast on the sample (community-1): the fast mode
#    (cuDNN's LSTM, TF32 or float16 trunk) judged, with its cost against exact
# 3. speed.py --device cuda on the sample: both warm, same process, best of 2, per
#    pipeline, exact and fast (--precision)
# 3b. gpu_sweep.py --device cuda: the port alone, warm, one setting changed at a time:
#    fbank numpy vs graph, cuDNN conv algorithm search (EXHAUSTIVE, HEURISTIC, DEFAULT),
#    batch 32..256, the arena (kSameAsRequested, gpu_mem_limit), CUDA graphs on the
#    trunk alone, the exact segmentation (its LSTM a Scan) on the host's CPU instead;
#    then the default on 1 hour (AMI cycled), warm: the issue's 5 s line; and the
#    fast mode's hour, warm
# 4. memory.py --device cuda --pyannote on the sample, 10 minutes and 1 hour (AMI cycled),
#    community-1, and the hour for 3.1: each side in its own process (fresh): wall
#    time, RTF, peak host RSS, peak GPU memory (nvidia-smi), RTTMs identical; then the
#    fast port alone on the hour, both pipelines
# 5. $OUT/gpu.json and a short table
#
# --dry-run: the same steps on the CPU with tiny inputs (11 s crops, a 0.2 minute
# recording, one repeat): what the tests run; it needs no GPU and installs nothing.
# Exit status: 0 when every step ran and verify.py passed, else verify.py's, else the
# first failing step's (each step runs even when one before it failed).
set -euo pipefail

DRY=0
OUT=gpu-results
WHEELS=
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT="$2"; shift ;;
    --wheels) WHEELS=$(cd "$2" && pwd) || exit 2; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "gpu.sh: unknown argument $1 (use --dry-run, --out DIR, --wheels DIR)" >&2; exit 2 ;;
  esac
  shift
done

cd "$(dirname "$0")/.."
REPO=$(pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYANNOTE_METRICS_ENABLED=false HF_HUB_OFFLINE=1
PY=${PY:-$REPO/.venv/bin/python}
AMI=${AMI:-$REPO/../shared/audio/ami}
if ls "$AMI"/*.wav >/dev/null 2>&1; then
  export AMI; AMI_FILES=$(ls "$AMI"/*.wav)
else  # no ../shared here: the AMI excerpts bundled with the tests
  AMI_FILES="$REPO/tests/data/ami_trn03.wav $REPO/tests/data/ami_trn08.wav"
fi
say() { printf '\n== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }

say "set-up"
if [ -n "$WHEELS" ]; then
  SITE="$WHEELS/site"; mkdir -p "$SITE"
  for archive in "$WHEELS"/*.tar.xz; do [ -e "$archive" ] && tar -xJf "$archive" -C "$SITE"; done
  if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl
  fi
  export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
  echo "wheels: $(ls "$WHEELS"/*.whl 2>/dev/null | wc -l) wheels, $(ls "$WHEELS"/*.tar.xz 2>/dev/null | wc -l) archives into $SITE"
elif [ ! -x "$PY" ]; then
  if [ "$DRY" = 1 ]; then echo "gpu.sh: no python at $PY (set PY=)" >&2; exit 2; fi
  python3 -m venv .venv && .venv/bin/pip install -q -e '.[reference,test]'
fi
NVLIBS=$("$PY" -c "import glob, os, sys; print(':'.join(sorted({os.path.dirname(p) for d in sys.path if os.path.isdir(os.path.join(d, 'nvidia')) for p in glob.glob(os.path.join(d, 'nvidia', '*', 'lib', '*.so*'))})))" 2>/dev/null || true)
[ -n "$NVLIBS" ] && export LD_LIBRARY_PATH="$NVLIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$PY" - <<'EOF'
import onnxruntime, torch
print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}"
      + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""))
print(f"onnxruntime {onnxruntime.__version__}: {', '.join(onnxruntime.get_available_providers())}")
EOF

if [ "$DRY" = 1 ]; then
  DEVICE=cpu; REPEAT=1; LENGTHS="0.2"
  AUDIO="$OUT/audio"; mkdir -p "$AUDIO"
  "$PY" - "$AUDIO" "$REPO/tests/data/sample.wav" $(echo $AMI_FILES | cut -d' ' -f1-2) <<'EOF'
import sys
import soundfile as sf
for path in sys.argv[2:]:  # 11 s crops: two chunks each
    data, rate = sf.read(path, dtype="float32", frames=11 * sf.info(path).samplerate)
    sf.write(f"{sys.argv[1]}/{path.rsplit('/', 1)[-1]}", data, rate)
EOF
  FILES=$(ls "$AUDIO"/*.wav)
else
  DEVICE=cuda; REPEAT=2; LENGTHS="10 60"
  FILES="$REPO/tests/data/sample.wav $(echo $AMI_FILES | cut -d' ' -f1-2)"
fi
SAMPLE=$(echo $FILES | cut -d' ' -f1)

# both pipelines where the CLIs have --pipeline; today's alone where they have not yet
if "$PY" verify.py run --help 2>/dev/null | grep -q -- "--pipeline"; then PIPELINES="3.1 community-1"; else PIPELINES=default; fi
pipeline_args() { [ "$1" != default ] && echo "--pipeline $1"; true; }
suffix_of() { [ "$1" != default ] && echo "-$1"; true; }
FBANK=
"$PY" verify.py run --help 2>/dev/null | grep -q -- "--fbank" && FBANK="--fbank graph"

STATUS=0
step() {  # a failing step is reported and the next one still runs (one lease, every number)
  "$@" || { code=$?; echo "gpu.sh: exit $code from: $*"; [ "$STATUS" != 0 ] || STATUS=$code; }
}

VERIFY=0
for p in $PIPELINES; do
  suffix=$(suffix_of "$p")
  files=$FILES; [ "$p" = community-1 ] && files=$SAMPLE  # the 8-minute budget: one recording
  say "verify.py run --device $DEVICE $FBANK $(pipeline_args "$p")"
  set +e
  "$PY" verify.py run $files --device $DEVICE $FBANK $(pipeline_args "$p") --dumps "$OUT/dumps$suffix" --json "$OUT/verify$suffix.json"
  code=$?
  set -e
  echo "verify.py exit status: $code"
  [ "$VERIFY" != 0 ] || VERIFY=$code
done
[ -f "$OUT/verify.json" ] || cp "$OUT/verify-3.1.json" "$OUT/verify.json" 2>/dev/null || true
# the fast mode is judged like any candidate and expected to fail stages: its exit
# status is reported, not the script's
say "verify.py run --device $DEVICE --precision fast (sample, community-1)"
step "$PY" verify.py export --precision fast
set +e
"$PY" verify.py run "$SAMPLE" --device $DEVICE --precision fast --dumps "$OUT/dumps-fast" --json "$OUT/verify-fast.json"
echo "verify.py --precision fast exit status: $? (1: stages over pyannote's noise, as expected of a fast mode)"
set -e

SPEED_PIPELINES=default
"$PY" benchmarks/speed.py --help 2>/dev/null | grep -q -- "--pipeline" && SPEED_PIPELINES="3.1 community-1"
for p in $SPEED_PIPELINES; do
  suffix=$(suffix_of "$p")
  say "speed.py --device $DEVICE $(pipeline_args "$p") (sample)"
  step "$PY" benchmarks/speed.py "$SAMPLE" --device $DEVICE --repeat $REPEAT $(pipeline_args "$p") --json "$OUT/speed$suffix.json"
  say "speed.py --device $DEVICE $(pipeline_args "$p") --precision fast (sample)"
  step "$PY" benchmarks/speed.py "$SAMPLE" --device $DEVICE --repeat $REPEAT $(pipeline_args "$p") --precision fast \
    --json "$OUT/speed-fast$suffix.json"
done
[ -f "$OUT/speed.json" ] || cp "$OUT/speed-3.1.json" "$OUT/speed.json" 2>/dev/null || true

SWEEP_ARGS="--device $DEVICE --repeat $REPEAT"
[ "$DRY" = 1 ] && SWEEP_ARGS="$SWEEP_ARGS --dry-run" || SWEEP_ARGS="$SWEEP_ARGS --long-minutes 60"
for p in $PIPELINES; do
  suffix=$(suffix_of "$p")
  say "gpu_sweep.py $SWEEP_ARGS $(pipeline_args "$p") (sample)"
  step "$PY" benchmarks/gpu_sweep.py "$SAMPLE" $SWEEP_ARGS $(pipeline_args "$p") --json "$OUT/sweep$suffix.json"
  SWEEP_ARGS=${SWEEP_ARGS/--long-minutes 60/}  # the hour once
done
LONG="--long-minutes 60"; [ "$DRY" = 1 ] && LONG="--long-minutes 0.2"
say "gpu_sweep.py --precision fast: the fast mode's hour, warm"
step "$PY" benchmarks/gpu_sweep.py "$SAMPLE" --device $DEVICE --repeat 1 --precision fast --only-long $LONG \
  --json "$OUT/sweep-fast.json"

say "memory.py --device $DEVICE --pyannote"
step "$PY" benchmarks/memory.py --audio "$SAMPLE" --device $DEVICE --pyannote --keep "$OUT/long" --json "$OUT/memory-sample.json"
HOUR=${LENGTHS##* }  # the longest: the hour (0.2 minutes in the dry run)
for minutes in $LENGTHS; do
  step "$PY" benchmarks/memory.py --minutes $minutes --ami --device $DEVICE --pyannote --keep "$OUT/long" --json "$OUT/memory-$minutes.json"
  if [ -z "${DIFFERS:-}" ] && grep -q '"rttm_identical": false' "$OUT/memory-$minutes.json" 2>/dev/null; then
    DIFFERS=$(ls "$OUT"/long/*.wav | head -1)  # kept: verify.py says where the two part
    mv "$DIFFERS" "$OUT/differs.wav"; DIFFERS="$OUT/differs.wav"
  fi
  rm -f "$OUT"/long/*.wav
done
step "$PY" benchmarks/memory.py --minutes $HOUR --ami --device $DEVICE --pyannote --pipeline 3.1 --keep "$OUT/long" \
  --json "$OUT/memory-$HOUR-3.1.json"
for p in community-1 3.1; do  # the fast port alone, fresh
  step "$PY" benchmarks/memory.py --minutes $HOUR --ami --device $DEVICE --precision fast --pipeline $p --keep "$OUT/long" \
    --json "$OUT/memory-$HOUR-$p-fast.json"
done
rm -f "$OUT"/long/*.wav
if [ -n "${DIFFERS:-}" ]; then
  say "verify.py run --device $DEVICE on the first recording whose RTTMs differ"
  step "$PY" verify.py run "$DIFFERS" --device $DEVICE --dumps "$OUT/dumps-differs" --json "$OUT/verify-differs.json"
fi

say "summary"
"$PY" - "$OUT" "$DEVICE" "$VERIFY" <<'EOF'
import json, sys
from pathlib import Path
out, device, verify = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
import torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
load = lambda name: json.loads((out / name).read_text()) if (out / name).is_file() else None
report = {"device": device, "gpu": gpu, "tf32": {"torch_matmul": False, "torch_cudnn": False, "onnxruntime": False},
          "verify": load("verify.json"), "verify_exit": verify, "speed": load("speed.json"), "memory": [],
          "verify_fast": load("verify-fast.json"),
          "speed_fast_by_pipeline": {p: load(f"speed-fast-{p}.json") for p in ("3.1", "community-1") if load(f"speed-fast-{p}.json")},
          "verify_by_pipeline": {p: load(f"verify-{p}.json") for p in ("3.1", "community-1") if load(f"verify-{p}.json")},
          "speed_by_pipeline": {p: load(f"speed-{p}.json") for p in ("3.1", "community-1") if load(f"speed-{p}.json")},
          "sweep": {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("sweep*.json"))}}
# memory: community-1 exact against pyannote (sample, then the lengths); then the hour's
# other runs (3.1, and the fast port alone), by pipeline and precision
runs = [json.loads(p.read_text()) for p in sorted(out.glob("memory-*.json"))]
key = lambda m: (m.get("pipeline", "community-1"), m.get("precision", "exact"))
report["memory"] = sorted([m for m in runs if key(m) == ("community-1", "exact")], key=lambda m: m["minutes"])
report["memory_hour"] = [m for m in runs if key(m) != ("community-1", "exact")]
(out / "gpu.json").write_text(json.dumps(report, indent=2) + "\n")
mb = lambda v: "-" if v is None else f"{v:.0f}"
print(f"{gpu or 'no GPU'} ({device}); verify.py: {'passed' if verify == 0 else f'exit {verify}'}")
print(f"{'audio':<16}{'side':<10}{'wall s':>9}{'RTF':>8}{'host RSS MB':>13}{'GPU MB':>8}  RTTM")
for m in report["memory"] + report["memory_hour"]:
    for side in ("pyannote", "port"):
        if side not in m:
            continue
        r = m[side]
        same = ("identical" if m.get("rttm_identical") else f"DER {m.get('der_port_vs_pyannote', 1):.2%}"
                if "rttm_identical" in m else "-")
        label = f"{side} {m.get('pipeline', '')} {m.get('precision', '')}".strip()
        print(f"{m['audio'][:15]:<16}{label:<10}{r['seconds']:>9.1f}{r['rtf']:>8.3f}{mb(r['peak_rss_mb']):>13}{mb(r['gpu_memory_mb']):>8}  {same}")
for name, sweep in report["sweep"].items():
    for r in sweep["rows"]:
        if "seconds" in r:
            print(f"{name}: {r['axis']}: fbank {r['fbank']}, batch {r['batch']}, {r.get('cuda') or 'defaults'}: "
                  f"{r['seconds']:.3f} s, RTTM {'identical' if r.get('rttm_identical') else 'DIFFERS'}")
    if sweep.get("long"):
        print(f"{name}: 1 hour warm: {sweep['long'].get('seconds', sweep['long'].get('error'))}")
for name, speed in [("exact", report["speed"] or {})] + [(f"fast {p}", s) for p, s in report["speed_fast_by_pipeline"].items()]:
    for r in speed.get("results", []):
        print(f"warm, same process, {name}, {r['audio']}: pyannote {r['pyannote_s']:.2f} s, port {r['port_s']:.2f} s "
              f"({r['ratio']:.1f}x), models alone {r['floor_s']:.2f} s (port/floor {r['port_floor_ratio']:.2f})")
EOF
[ "$VERIFY" != 0 ] && exit "$VERIFY"
exit "$STATUS"
