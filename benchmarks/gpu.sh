#!/usr/bin/env bash
# The GPU path, measured: one prepared command for one NVIDIA GPU (fits in ~8 minutes on an H100).
#
#     benchmarks/gpu.sh [--dry-run] [--out DIR]
#
# 1. set-up: the README's venv (.venv, '.[reference,test]') unless it is there already
#    (an offline machine needs PIP_FIND_LINKS=<wheelhouse> PIP_NO_INDEX=1)
# 2. verify.py run --device cuda on the sample and two AMI excerpts: pyannote on CUDA
#    (TF32 off, see reference/run.py) against the port on ONNX Runtime's CUDA provider,
#    every stage compared
# 3. speed.py --device cuda on the sample: both warm, same process, best of 2
# 4. memory.py --device cuda --pyannote on the sample, 10 minutes and 1 hour (AMI cycled):
#    each side in its own process: wall time, RTF, peak host RSS, peak GPU memory
#    (nvidia-smi), RTTMs identical
# 5. $OUT/gpu.json and a short table
#
# --dry-run: the same steps on the CPU with tiny inputs (11 s crops, a 0.2 minute
# recording, one repeat): what the tests run; it needs no GPU and installs nothing.
# Exit status: 0 when every step ran and verify.py passed, else the first failure's.
set -euo pipefail

DRY=0
OUT=gpu-results
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT="$2"; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "gpu.sh: unknown argument $1 (use --dry-run, --out DIR)" >&2; exit 2 ;;
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
say() { printf '\n== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }

say "set-up"
if [ ! -x "$PY" ]; then
  if [ "$DRY" = 1 ]; then echo "gpu.sh: no python at $PY (set PY=)" >&2; exit 2; fi
  python3 -m venv .venv && .venv/bin/pip install -q -e '.[reference,test]'
fi
"$PY" - <<'EOF'
import onnxruntime, torch
print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}"
      + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""))
print(f"onnxruntime {onnxruntime.__version__}: {', '.join(onnxruntime.get_available_providers())}")
EOF

if [ "$DRY" = 1 ]; then
  DEVICE=cpu; REPEAT=1; LENGTHS="0.2"
  AUDIO="$OUT/audio"; mkdir -p "$AUDIO"
  "$PY" - "$AUDIO" "$REPO/tests/data/sample.wav" $(ls "$AMI"/*.wav | head -2) <<'EOF'
import sys
import soundfile as sf
for path in sys.argv[2:]:  # 11 s crops: two chunks each
    data, rate = sf.read(path, dtype="float32", frames=11 * sf.info(path).samplerate)
    sf.write(f"{sys.argv[1]}/{path.rsplit('/', 1)[-1]}", data, rate)
EOF
  FILES=$(ls "$AUDIO"/*.wav)
else
  DEVICE=cuda; REPEAT=2; LENGTHS="10 60"
  FILES="$REPO/tests/data/sample.wav $(ls "$AMI"/*.wav | head -2 | tr '\n' ' ')"
fi
SAMPLE=$(echo $FILES | cut -d' ' -f1)

say "verify.py run --device $DEVICE"
set +e
"$PY" verify.py run $FILES --device $DEVICE --dumps "$OUT/dumps" --json "$OUT/verify.json"
VERIFY=$?
set -e
echo "verify.py exit status: $VERIFY"

say "speed.py --device $DEVICE (sample)"
"$PY" benchmarks/speed.py "$SAMPLE" --device $DEVICE --repeat $REPEAT --json "$OUT/speed.json"

say "memory.py --device $DEVICE --pyannote"
"$PY" benchmarks/memory.py --audio "$SAMPLE" --device $DEVICE --pyannote --keep "$OUT/long" --json "$OUT/memory-sample.json"
for minutes in $LENGTHS; do
  "$PY" benchmarks/memory.py --minutes $minutes --ami --device $DEVICE --pyannote --keep "$OUT/long" --json "$OUT/memory-$minutes.json"
  rm -f "$OUT"/long/*.wav
done

say "summary"
"$PY" - "$OUT" "$DEVICE" "$VERIFY" <<'EOF'
import json, sys
from pathlib import Path
out, device, verify = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
import torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
report = {"device": device, "gpu": gpu, "tf32": {"matmul": False, "cudnn": False},
          "verify": json.loads((out / "verify.json").read_text()) if (out / "verify.json").is_file() else None,
          "verify_exit": verify, "speed": json.loads((out / "speed.json").read_text()), "memory": []}
for path in sorted(out.glob("memory-*.json"), key=lambda p: json.loads(p.read_text())["minutes"]):
    report["memory"].append(json.loads(path.read_text()))
(out / "gpu.json").write_text(json.dumps(report, indent=2) + "\n")
mb = lambda v: "-" if v is None else f"{v:.0f}"
print(f"{gpu or 'no GPU'} ({device}); verify.py: {'passed' if verify == 0 else f'exit {verify}'}")
print(f"{'audio':<16}{'side':<10}{'wall s':>9}{'RTF':>8}{'host RSS MB':>13}{'GPU MB':>8}  RTTM")
for m in report["memory"]:
    for side in ("pyannote", "port"):
        r = m[side]
        same = "identical" if m.get("rttm_identical") else "DIFFERENT"
        print(f"{m['audio'][:15]:<16}{side:<10}{r['seconds']:>9.1f}{r['rtf']:>8.3f}{mb(r['peak_rss_mb']):>13}{mb(r['gpu_memory_mb']):>8}  {same}")
for r in report["speed"]["results"]:
    print(f"warm, same process, {r['audio']}: pyannote {r['pyannote_s']:.2f} s, port {r['port_s']:.2f} s "
          f"({r['ratio']:.1f}x), models alone {r['floor_s']:.2f} s (port/floor {r['port_floor_ratio']:.2f})")
EOF
exit $VERIFY
