"""Count looping captions in a run's samples: predictions in which one word comes five times or more.

README's "The bundled model" quotes this count for demo_caption at 4 shots:
    evals run --shots 0,4 --seeds 3 --output-dir /tmp/demo3
    python scripts/caption_loops.py /tmp/demo3/tiny-idefics/demo_caption/*.samples.jsonl
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

REPEATS = 5


def loops(prediction: str, repeats: int = REPEATS) -> bool:
    """Whether some word of the prediction (lower-cased, split on whitespace) occurs `repeats` times or more."""
    counts = Counter(prediction.lower().split())
    return bool(counts) and max(counts.values()) >= repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", nargs="+", type=Path, help="*.samples.jsonl files of captioning cells")
    args = parser.parse_args()
    for path in args.samples:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        looping = sum(loops(str(row.get("prediction", ""))) for row in rows)
        print(f"{path.name}: {looping} of {len(rows)} captions repeat a word {REPEATS} times or more")


if __name__ == "__main__":
    main()
