#!/usr/bin/env bash
# The acceptance runs' photo folder: DIR/photos (120 CamVid street photos, every 4th, under street/, and the 80
# COCO-MINI photos under coco/, copied from ../shared) and DIR/captions.csv (path,caption: COCO-MINI's captions).
# Usage: bash bench/acceptance_folder.sh DIR   (used by new_user_acceptance.sh and ray_acceptance.sh)
set -euo pipefail
shared="$(cd "$(dirname "$0")/.." && pwd)/../shared"; A=$1
mkdir -p $A/photos/street $A/photos/coco
ls $shared/data/camvid/*/images/*.jpg | awk 'NR % 4 == 1' | head -120 | xargs -I{} cp {} $A/photos/street/
cp $shared/data/coco-mini/images/*.jpg $A/photos/coco/
python3 - "$shared" "$A" <<'PY'
import csv, json, sys
d = json.load(open(sys.argv[1] + "/data/coco-mini/captions_train2017.json"))
names = {i["id"]: i["file_name"] for i in d["images"]}
with open(sys.argv[2] + "/captions.csv", "w", newline="") as f:
    w = csv.writer(f); w.writerow(["path", "caption"])
    for a in d["annotations"]:
        w.writerow(["coco/" + names[a["image_id"]], a["caption"].strip()])
PY
