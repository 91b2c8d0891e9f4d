#!/usr/bin/env bash
# A new user's first hour, as issue "out of the box" asks: a fresh venv, `pip install .` (not editable), an empty
# HOME and no weights anywhere; a mixed folder of 117 CamVid street photos and the 80 COCO-MINI photos with a
# path,caption CSV; then segsearch index (timed, peak memory), the folder's size, photo and caption searches.
# Usage: bash bench/new_user_acceptance.sh [WORK_DIR]   (needs ../shared; about 4 minutes on 2 cores)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd); A=${1:-/tmp/segsearch-acceptance}
rm -rf $A; mkdir -p $A/home
python3 -m venv $A/venv
( cd $repo && $A/venv/bin/pip install -q . > $A/pip.log 2>&1 )
bash $repo/bench/acceptance_folder.sh $A
echo "photos: $(find $A/photos -name '*.jpg' | wc -l)"
cd $A
run() { env -u SEGSEARCH_WEIGHTS -u XDG_CACHE_HOME HOME=$A/home $A/venv/bin/segsearch "$@"; }
/usr/bin/time -v -o $A/index.time bash -c "env -u SEGSEARCH_WEIGHTS -u XDG_CACHE_HOME HOME=$A/home $A/venv/bin/segsearch index photos --out idx --captions captions.csv 2>/dev/null"
grep -E "Elapsed|Maximum resident" $A/index.time
du -sb idx; du -sb idx/*; ls -la idx idx/work; du -sb photos
street=$(ls photos/street | head -1)
/usr/bin/time -f "search --image: %e s" env -u SEGSEARCH_WEIGHTS -u XDG_CACHE_HOME HOME=$A/home $A/venv/bin/segsearch search idx --image photos/street/$street -k 5
run search idx --image photos/coco/000000252639.jpg -k 10 --sheet $A/bus-sheet.png
run search idx --text "horses on a hill by a lake" -k 3
run search idx --text "a red bus in front of a church" -k 3
run search idx --text "a man riding a horse" -k 3
run search idx --text "bus" --draw road:0,0.6,1,1 -k 3
ls $A/home/.cache/segsearch
