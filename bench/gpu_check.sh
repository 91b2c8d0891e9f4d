#!/usr/bin/env bash
# The whole GPU check in one command, for a session that has a CUDA device:
#
#     bash bench/gpu_check.sh [OUT_DIR]       (default bench-report/gpu)
#
# Prints the device, then runs bench/gpu_throughput.py (the stream of JPEGs to codes, `segsearch index` itself, and
# the maps' agreement with the CPU's) once per precision: float16 and bfloat16 autocast, and float32. Each run's
# JSON goes to OUT_DIR; a summary table (photos/s and agreement per precision) is printed at the end and written to
# OUT_DIR/summary.md. Without CUDA it says so and exits 0. SEGSEARCH_GPU_CHECK_IMAGES (default 4096) and
# SEGSEARCH_GPU_CHECK_INDEX_PHOTOS (default 1024) size the runs.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-bench-report/gpu}"
python="${PYTHON:-python}"
if ! "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: no CUDA device here; skipped"
    exit 0
fi
mkdir -p "$out"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/device.txt"
images="${SEGSEARCH_GPU_CHECK_IMAGES:-4096}"
index_photos="${SEGSEARCH_GPU_CHECK_INDEX_PHOTOS:-1024}"
for amp in float16 bfloat16 off; do
    echo "== autocast: $amp"
    "$python" "$here/gpu_throughput.py" --amp "$amp" --images "$images" --index-photos "$index_photos" \
        --out "$out/gpu-$amp.json"
done
"$python" - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = ["| precision | stream photos/s | segsearch index photos/s | class-mass agreement with CPU | cell agreement |",
        "| --- | --- | --- | --- | --- |"]
for amp in ("float16", "bfloat16", "off"):
    r = json.loads((out / f"gpu-{amp}.json").read_text())
    a = r["agreement_with_cpu"]
    index = r.get("index", {}).get("photos_per_s", float("nan"))
    rows.append(f"| {'float32' if amp == 'off' else amp} | {r['images_per_s']:.0f} | {index:.0f} | "
                f"{a['class_mass_agreement']:.4f} | {a['cell_agreement']:.4f} |")
gpu = json.loads((out / "gpu-float16.json").read_text())["gpu"]
text = f"GPU: {gpu}\n\n" + "\n".join(rows) + "\n"
(out / "summary.md").write_text(text)
print(text)
PY
