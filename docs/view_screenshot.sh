#!/usr/bin/env bash
# Regenerate docs/view_cell.png, the viewer screenshot in README ("Looking at samples: the viewer"): the bundled tiny
# IDEFICS on demo_vqa at 0 and 2 shots (20 queries), its report, and headless Chromium's picture of the 2-shot cell.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-eval-results/view-demo}"
chromium="$(command -v chromium || command -v chromium-browser)" || { echo "error: chromium not found (apt-get install chromium)" >&2; exit 2; }
evals run --task demo_vqa --shots 0,2 --seed 0 --limit 20 --output-dir "$out"
evals view "$out" --output "$out/report.html"
shoot() {  # shoot PNG FRAGMENT: the page at that URL hash after its script ran
  "$chromium" --headless --disable-gpu --no-sandbox --hide-scrollbars --window-size=1280,900 --virtual-time-budget=5000 \
    --screenshot="$1" "file://$(realpath "$out/report.html")#$2" 2>/dev/null
}
# The cells are in (task, shots) order: cell 1 is demo_vqa at 2 shots.
shoot docs/view_cell.png "view=cell&cell=1"
echo "wrote docs/view_cell.png"
