"""Captioning metrics (COCO, Flickr30k, NoCaps, TextCaps) exactly as pycocoevalcap's COCOEvalCap computes them.

Chen et al. 2015, "Microsoft COCO Captions: Data Collection and Evaluation Server" (arXiv 1504.00325):
captions are lower-cased and split by the Stanford PTB tokenizer, punctuation tokens dropped, then
CIDEr-D (Vedantam et al. 2015, arXiv 1411.5726; its idf comes from the references of the whole
evaluated set), BLEU-1..4, ROUGE-L and METEOR 1.5. Scores are x100.

pycocoevalcap's BLEU, ROUGE-L and CIDEr-D classes are used as they are. Its two Java steps are
driven here with the same jars, commands and text, because its wrappers write temporary files into
the installed package, tokenize references and predictions in two JVMs, and turn a failing JVM
into a stray traceback (or, for METEOR, a lock that hangs the interpreter at exit).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from evals.errors import DataError, EvalsError
from metrics.meteor import parse_stats

JAVA_MISSING = ("Java not found: pycocoevalcap's PTB tokenizer and METEOR need it; "
                "install a Java runtime (e.g. apt-get install default-jre-headless)")
# Characters the PTB tokenizer reads as a line end. COCOEvalCap replaces only "\n" with a space; the
# others would shift every later caption onto the wrong image, so they become spaces too.
LINE_BREAKS = str.maketrans({c: " " for c in "\n\r\x0b\x0c\u2028\u2029"})


@dataclass(frozen=True)
class CaptionScores:
    """Corpus scores ("CIDEr", "Bleu_1".."Bleu_4", "ROUGE_L", "METEOR") and each image's CIDEr-D and ROUGE-L (whose
    means are the corpus CIDEr-D and ROUGE-L, what a bootstrap over images redraws), all 0-100, and the per-image
    counts from which BLEU and METEOR are recomputed exactly on a redrawn set of images."""

    scores: Mapping[str, float]
    per_image_cider: Mapping[str, float]
    per_image_rouge: Mapping[str, float] = field(default_factory=dict)
    # Each image's BLEU counts (bleu_counts), in the order of `per_image_cider`: corpus BLEU is a function of their sums.
    bleu_counts: Sequence[tuple[int, ...]] = ()
    # Each image's METEOR statistics (the jar's SCORE answer, metrics.meteor), same order: the corpus METEOR is a
    # function of their sums.
    meteor_stats: Sequence[tuple[float, ...]] = ()


def caption_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> CaptionScores:
    """Score one caption per image against that image's reference captions, over the whole set.

    Images are taken in the order of `references` (COCOEvalCap's order: the reference file's), which
    fixes the last bits of the corpus averages.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    ids = evaluated_ids(predictions, references)
    java = find_java()
    # Start METEOR first: its JVM loads while the tokenizer and the Python metrics run.
    meteor = warm_meteor(java)
    gts, res = tokenize_all(java, ids, predictions, references)
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, rouge_per_image = Rouge().compute_score(gts, res)
    cider, per_image = Cider().compute_score(gts, res)
    meteor_stats = meteor.statistics(gts, res)
    meteor_score = meteor.evaluate(meteor_stats)
    scores = {"CIDEr": cider, **{f"Bleu_{n}": b for n, b in enumerate(bleu, start=1)}, "ROUGE_L": rouge, "METEOR": meteor_score}
    return CaptionScores(
        scores={key: 100 * float(value) for key, value in scores.items()},
        per_image_cider={i: 100 * float(value) for i, value in zip(ids, per_image)},
        per_image_rouge={i: 100 * float(value) for i, value in zip(ids, rouge_per_image)},
        bleu_counts=[bleu_counts(res[i][0], gts[i]) for i in ids],
        meteor_stats=[parse_stats(line) for line in meteor_stats],
    )


def evaluated_ids(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> list[str]:
    """The image ids, in reference order, after checking that every image has one caption and references."""
    if not references:
        raise DataError("captions: no images to score")
    missing = [i for i in references if i not in predictions]
    unknown = [i for i in predictions if i not in references]
    if missing or unknown:
        raise DataError(f"captions: {len(missing)} images without a prediction {missing[:5]}, "
                        f"{len(unknown)} predictions for images without references {unknown[:5]}")
    unreferenced = [i for i, captions in references.items() if not captions]
    if unreferenced:
        raise DataError(f"captions: images without reference captions: {unreferenced[:5]}")
    return list(references)


def find_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise EvalsError(JAVA_MISSING)
    return java


def tokenize_all(java: str, ids: Sequence[str], predictions: Mapping[str, str],
                 references: Mapping[str, Sequence[str]]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """References and predictions tokenized in one JVM, in COCOEvalCap's {image: [captions]} shape."""
    sentences = [caption for i in ids for caption in references[i]] + [predictions[i] for i in ids]
    tokens = iter(ptb_tokenize(java, sentences))
    gts = {i: [next(tokens) for _ in references[i]] for i in ids}
    res = {i: [next(tokens)] for i in ids}
    return gts, res


def ptb_tokenize(java: str, sentences: Sequence[str]) -> list[str]:
    """pycocoevalcap's PTBTokenizer: Stanford PTBTokenizer 3.4.1, one caption a line, lower-cased,
    then its punctuation tokens removed. The tokenizer keeps lines apart, so one call serves all."""
    from pycocoevalcap.tokenizer import ptbtokenizer

    jar = Path(ptbtokenizer.__file__).with_name(ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR)
    command = [java, "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase", "-encoding", "utf-8"]
    text = "\n".join(s.translate(LINE_BREAKS) for s in sentences)
    try:
        done = subprocess.run(command, input=text.encode("utf-8"), capture_output=True, check=False)
    except OSError as error:
        raise EvalsError(f"the PTB tokenizer (java) could not start: {error}") from None
    lines = done.stdout.decode("utf-8").split("\n")
    if len(lines) == len(sentences) + 1 and lines[-1] == "":
        lines.pop()
    if done.returncode != 0 or len(lines) != len(sentences):
        raise EvalsError(f"the PTB tokenizer (java, {jar.name}) failed: exit status {done.returncode}, "
                         f"{len(lines)} lines for {len(sentences)} captions; {last_line(done.stderr)}")
    return [" ".join(w for w in line.rstrip().split(" ") if w not in ptbtokenizer.PUNCTUATIONS) for line in lines]


def last_line(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "it printed nothing on stderr"


class Meteor:
    """METEOR 1.5 over stdio, spoken to as pycocoevalcap's Meteor wrapper does (same command, same
    lines), with a dead or failing JVM reported as one error. Use `warm_meteor`, which keeps one."""

    def __init__(self, java: str) -> None:
        from pycocoevalcap.meteor import meteor

        # A file, not a pipe: a chatty JVM can never block on it. Closed in close(), with the process.
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.owner = os.getpid()
        self.lock = threading.Lock()
        command = [java, "-jar", "-Xmx2G", meteor.METEOR_JAR, "-", "-", "-stdio", "-l", "en", "-norm"]
        try:
            self.process = subprocess.Popen(command, cwd=Path(meteor.__file__).parent, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=self.stderr)
        except OSError as error:
            self.stderr.close()
            raise EvalsError(f"METEOR (java) could not start: {error}") from None

    def usable(self) -> bool:
        return self.owner == os.getpid() and self.process.poll() is None

    def close(self) -> None:
        """Stop the JVM, reap it and release its streams. Never raises: it runs at exit and after a failure,
        where an error of its own would hide the one being reported."""
        self.process.kill()  # a no-op once the process has been reaped
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.stderr):
            # stdin may still hold a line that a dead JVM never read: closing flushes it into a broken pipe
            # (BrokenPipeError), and the file is closed all the same.
            with contextlib.suppress(OSError):
                stream.close()

    def score(self, gts: Mapping[str, Sequence[str]], res: Mapping[str, Sequence[str]]) -> float:
        """The corpus METEOR: one SCORE line per image gives its statistics, one EVAL line scores them all."""
        return self.evaluate(self.statistics(gts, res))

    def statistics(self, gts: Mapping[str, Sequence[str]], res: Mapping[str, Sequence[str]]) -> list[str]:
        """Each image's statistics line (the SCORE answer), in the order of `res`."""
        with self.lock:
            stats = []
            for i, hypotheses in res.items():
                hypothesis = hypotheses[0].replace("|||", "").replace("  ", " ")
                stats.append(self.ask(" ||| ".join(("SCORE", " ||| ".join(gts[i]), hypothesis))))
            return stats

    def evaluate(self, stats: Sequence[str]) -> float:
        """The jar's corpus score of these statistics lines (repeats count as often as they appear)."""
        with self.lock:
            self.ask(" ||| ".join(("EVAL", *stats)))  # the first answer line is the first image's score
            for _ in range(len(stats) - 1):
                self.read()
            return float(self.read())

    def ask(self, line: str) -> str:
        try:
            self.process.stdin.write(f"{line}\n".encode())
            self.process.stdin.flush()
        except OSError:
            self.fail()
        return self.read()

    def read(self) -> str:
        answer = self.process.stdout.readline().decode("utf-8").strip()
        if not answer:
            self.fail()
        return answer

    def fail(self) -> None:
        self.process.kill()
        self.process.wait()
        self.stderr.seek(0)
        raise EvalsError(f"METEOR (java, meteor-1.5.jar) stopped answering (exit status {self.process.returncode}); "
                         f"{last_line(self.stderr.read())}")


# One METEOR JVM per interpreter, kept between calls: loading its paraphrase table takes seconds,
# scoring a set a fraction of that, and a run scores many cells.
_WARM: dict[str, Meteor] = {}


def warm_meteor(java: str) -> Meteor:
    """The running METEOR process (started now if there is none, it died, or this is a forked child)."""
    meteor = _WARM.get(java)
    if meteor is None or not meteor.usable():
        meteor = _WARM[java] = Meteor(java)
        atexit.register(meteor.close)
    return meteor


# BLEU from counts: pycocoevalcap's corpus BLEU is a function of counts summed over images (hypothesis length, the
# closest reference length, and per n the n-grams guessed and matched), so a bootstrap over images recomputes it
# exactly from the redrawn images' sums, with no Java and no re-tokenizing.

BLEU_TINY, BLEU_SMALL = 1e-15, 1e-9  # pycocoevalcap's guards: 0 matches give 0, not a division by zero


def bleu_counts(hypothesis: str, references: Sequence[str], n: int = 4) -> tuple[int, ...]:
    """(hypothesis length, closest reference length, guessed 1..n-grams, matched 1..n-grams) of one tokenized image,
    as pycocoevalcap's BleuScorer counts them ("closest": the reference length nearest the hypothesis', the shorter
    on a tie)."""
    from pycocoevalcap.bleu.bleu_scorer import cook_refs, cook_test

    comps = cook_test(hypothesis, cook_refs(list(references), n=n), n=n)
    length = comps["testlen"]
    closest = min(comps["reflen"], key=lambda r: (abs(r - length), r))
    return (length, closest, *comps["guess"], *comps["correct"])


def corpus_bleu(totals: Sequence[float], n: int = 4) -> list[float]:
    """BLEU-1..n (x100) from counts summed over images (`bleu_counts` summed), in pycocoevalcap's arithmetic."""
    import math

    length, reference, guessed, matched = totals[0], totals[1], totals[2:2 + n], totals[2 + n:2 + 2 * n]
    scores, product = [], 1.0
    for k in range(n):
        product *= float(matched[k] + BLEU_TINY) / (guessed[k] + BLEU_SMALL)
        scores.append(product ** (1.0 / (k + 1)))
    ratio = (length + BLEU_TINY) / (reference + BLEU_SMALL)
    if ratio < 1:
        scores = [score * math.exp(1 - 1 / ratio) for score in scores]
    return [100 * score for score in scores]
