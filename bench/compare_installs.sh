#!/usr/bin/env bash
# Two installs of segsearch index the same real photos and must write the same files and rank the same:
# 40 CamVid photos (every 5th), then --add 8 COCO-MINI photos (a shard), compared byte for byte; then a photo,
# a sketch and a photo + sketch search over all 48, compared as JSON.
# Usage: bash bench/compare_installs.sh OLD_VENV/bin/segsearch NEW_VENV/bin/segsearch DIR
set -euo pipefail
shared="$(cd "$(dirname "$0")/.." && pwd)/../shared"
OLD=$1; NEW=$2; D=$3
rm -rf "$D"; mkdir -p "$D/photos" "$D/more"
ls "$shared"/data/camvid/*/images/*.jpg | awk 'NR % 5 == 1' | head -40 | xargs -I{} cp {} "$D/photos/"
ls "$shared"/data/coco-mini/images/*.jpg | head -8 | xargs -I{} cp {} "$D/more/"
cd "$D"
for v in old new; do bin=$OLD; [ $v = new ] && bin=$NEW; "$bin" index photos --out $v | tail -1; done
cp more/* photos/
for v in old new; do bin=$OLD; [ $v = new ] && bin=$NEW; "$bin" index photos --out $v --add | tail -1; done
for f in index.segsearch shards.json shards/000001.segsearch; do
    cmp old/$f new/$f && echo "identical: $f ($(stat -c %s new/$f) bytes)"
done
q=photos/$(ls photos | sed -n 3p)
for v in old new; do
    bin=$OLD; [ $v = new ] && bin=$NEW
    { "$bin" search $v --image "$q" -k 48 --json
      "$bin" search $v --draw "sky:0,0,1,0.4" --draw "road:0,0.6,1,1" -k 48 --json
      "$bin" search $v --image "$q" --draw "car:0.3,0.5,0.7,0.9" -k 48 --json; } 2>/dev/null | sed "s#$D/$v##g" > $v.json
done
cmp old.json new.json && echo "identical: 3 searches x 48 results"
