#!/usr/bin/env bash
# Regenerate docs/demo_leaderboard.md and docs/demo_shots.png, shown in README ("Leaderboards, plots and the
# regression gate"): the bundled tiny IDEFICS on the demo suite, shots 0,2,4 x seeds 0,1,2 x random/RICES, 20 queries.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-eval-results/demo-sweep}"
evals run --shots 0,2,4 --seed 0 --seed 1 --seed 2 --selection random,rices --embedder offline --limit 20 --output-dir "$out"
evals leaderboard "$out" --output docs/demo_leaderboard.md --plot docs/demo_shots.png
