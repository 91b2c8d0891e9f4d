#!/usr/bin/env bash
# Issue "beyond one machine"'s acceptance on real photos: the same folder (117 CamVid + 80 COCO-MINI photos, with
# their captions) indexed and searched without Ray and with --ray local, in this environment (the ray extra);
# then the two index files are compared byte for byte and photo, sketch, photo + sketch and text searches are
# compared result for result (all 197 photos ranked, so the whole ranking is compared, distances included).
# Usage: bash bench/ray_acceptance.sh [WORK_DIR]   (needs ../shared and `pip install -e ".[ray]"`; ~6 min on 2 cores)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd); A=${1:-/tmp/segsearch-ray-acceptance}
rm -rf $A; mkdir -p $A
bash $repo/bench/acceptance_folder.sh $A
n=$(find $A/photos -name '*.jpg' | wc -l); echo "photos: $n"
cd $A
/usr/bin/time -o local.time -f "index without Ray: %e s, %M KB peak" segsearch index photos --out local --captions captions.csv 2>local.log | tail -1
cat local.time
/usr/bin/time -o ray.time -f "index --ray local: %e s, %M KB peak (driver; Ray's start included)" segsearch index photos --out on-ray --captions captions.csv --ray local 2>ray.log | tail -1
cat ray.time
cmp local/index.segsearch on-ray/index.segsearch && echo "index.segsearch: identical ($(stat -c %s local/index.segsearch) bytes)"
street=photos/street/$(ls photos/street | sed -n 5p); coco=photos/coco/000000252639.jpg
same=0; total=0
for q in "--image $street" "--image $coco" "--draw sky:0,0,1,0.4 --draw road:0,0.6,1,1" \
         "--image $street --draw tree:0,0,0.5,0.5" "--text bus" "--text horse --draw grass:0,0.5,1,1"; do
    segsearch search local $q -k $n --json > a.jsonl 2>/dev/null
    /usr/bin/time -f "%e" -o t.txt segsearch search on-ray $q -k $n --json --ray local > b.jsonl 2>/dev/null
    total=$((total + 1))
    if cmp -s a.jsonl b.jsonl; then same=$((same + 1)); r=same; else r=DIFFERENT; fi
    echo "search $q: $(wc -l < a.jsonl) results, $r (--ray local: $(cat t.txt) s with Ray's start)"
done
echo "rankings identical: $same of $total queries"
