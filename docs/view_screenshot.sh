#!/usr/bin/env bash
# Regenerate docs/view_cell.png and docs/view_compare.png, the viewer screenshots in README ("Looking at samples: the
# viewer"): the bundled tiny IDEFICS on demo_vqa at 0 and 4 shots (40 queries), its report, and headless Chromium's
# pictures of the 4-shot cell and of the queries that flip between 0 and 4 shots.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-eval-results/view-demo}"
chromium="$(command -v chromium || command -v chromium-browser)" || { echo "error: chromium not found (apt-get install chromium)" >&2; exit 2; }
evals run --task demo_vqa --shots 0,4 --seed 0 --limit 40 --output-dir "$out"
evals view "$out" --output "$out/report.html"
shoot() {  # shoot PNG FRAGMENT: the page at that URL hash after its script ran
  "$chromium" --headless --disable-gpu --no-sandbox --hide-scrollbars --window-size=1280,900 --virtual-time-budget=5000 \
    --screenshot="$1" "file://$(realpath "$out/report.html")#$2" 2>/dev/null
}
# The cells are in (task, shots) order: cell 1 is demo_vqa at 4 shots.
shoot docs/view_cell.png "view=cell&cell=1"
shoot docs/view_compare.png "view=compare&a=0&b=1&flip=wrong-to-right"
echo "wrote docs/view_cell.png and docs/view_compare.png"
