#!/usr/bin/env bash
# GPU check: the demo suite on CUDA (float32 vs CPU, bfloat16, --batch-size auto, feature cache off, prefix reuse vs
# the naive path, device_map=auto split with the CPU, 2 processes when 2 GPUs exist); prints one JSON object and
# exits 0 when every check passed. `--dry-run` runs the same comparisons on the CPU. See benchmarks/gpu_check.py.
#   bash benchmarks/gpu_check.sh [--dry-run] [--limit 2] [--shots 0,4] [--keep]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-$(command -v python || command -v python3)}"
exec "$python" "$here/gpu_check.py" "$@"
