"""Caption metrics: every number pycocoevalcap printed for the conformance set, hand-computed cases, and Java failures."""

from __future__ import annotations

import json
import math
import random

import pytest

from evals.errors import DataError, EvalsError
from metrics import captioning
from metrics.captioning import JAVA_MISSING, Meteor, caption_scores, find_java, ptb_tokenize, warm_meteor
from metrics.meteor import corpus_meteor, parse_stats

BETA = 1.2  # ROUGE-L's recall weight in pycocoevalcap


@pytest.fixture(scope="module")
def conformance_scores(conformance):
    folder = conformance / "captioning"
    references_file = json.loads((folder / "captions_references.json").read_text())
    references = {str(image["id"]): [] for image in references_file["images"]}
    for annotation in references_file["annotations"]:
        references[str(annotation["image_id"])].append(annotation["caption"])
    predictions = {str(p["image_id"]): p["caption"] for p in json.loads((folder / "predictions.json").read_text())}
    expected = json.loads((folder / "expected.json").read_text())
    return caption_scores(predictions, references), expected


@pytest.mark.parametrize("metric", ["CIDEr", "Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "METEOR"])
def test_corpus_scores_match_pycocoevalcap(conformance_scores, metric):
    ours, expected = conformance_scores
    assert ours.scores[metric] == expected["scores"][metric] * 100


def test_per_image_cider_matches_pycocoevalcap(conformance_scores):
    ours, expected = conformance_scores
    assert dict(ours.per_image_cider) == {image: value * 100 for image, value in expected["per_image_cider"].items()}


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_corpus_bleu_from_summed_counts_is_pycocoevalcaps(conformance_scores, n):
    """What a bootstrap redraws: BLEU recomputed from the images' summed counts is the reference scorer's number."""
    ours, expected = conformance_scores
    totals = [sum(column) for column in zip(*ours.bleu_counts)]
    assert len(ours.bleu_counts) == len(ours.per_image_cider)
    assert captioning.corpus_bleu(totals)[n - 1] == pytest.approx(expected["scores"][f"Bleu_{n}"] * 100, rel=1e-12)


# The jar's Math.pow (a HotSpot intrinsic) is not always correctly rounded: about 1 resample in 1,000 ends one ulp
# away from the C library's pow used here, hence a relative tolerance far below the printed digits' worth.
JAR_ULPS = 1e-12


def jar_line(stats: tuple[float, ...]) -> str:
    return " ".join(repr(value) for value in stats)  # "7.0": what the jar printed, read back by its Scanner


def test_corpus_meteor_from_summed_stats_is_the_jars(conformance_scores):
    """What a bootstrap redraws: METEOR aggregated in Python from the images' SCORE statistics is the jar's EVAL."""
    ours, expected = conformance_scores
    assert len(ours.meteor_stats) == len(ours.per_image_cider)
    assert corpus_meteor(ours.meteor_stats) == pytest.approx(expected["scores"]["METEOR"], rel=JAR_ULPS)


def test_corpus_meteor_equals_the_jars_eval_on_redrawn_multisets(conformance_scores):
    ours, _ = conformance_scores
    meteor, draw = warm_meteor(find_java()), random.Random(19)
    for size in (1, 2, 7, 50, 300, 900):
        for _ in range(4):
            picked = [ours.meteor_stats[draw.randrange(len(ours.meteor_stats))] for _ in range(size)]
            jar = meteor.evaluate([jar_line(stats) for stats in picked])
            assert corpus_meteor(picked) == pytest.approx(jar, rel=JAR_ULPS), (size, picked[:3])


def test_corpus_meteor_corner_cases_are_the_jars():
    """A perfect match in one chunk adds no chunk to the sum (two of them score 1, not a fragmented 0.9); no match
    and an empty caption score 0 (the jar's NaN); a perfect but shuffled caption is penalised."""
    references = {"perfect": ["a cat sits on the mat"], "empty": ["a dog runs"], "none": ["a dog runs"],
                  "shuffled": ["a cat sits on the mat"], "partial": ["the dog runs in a park", "a puppy plays outside"]}
    hypotheses = {"perfect": ["a cat sits on the mat"], "empty": [""], "none": ["zebra xylophone"],
                  "shuffled": ["mat the on sits cat a"], "partial": ["a dogs running in the parks"]}
    meteor = warm_meteor(find_java())
    lines = dict(zip(hypotheses, meteor.statistics(references, hypotheses)))
    for names in (["perfect"], ["perfect", "perfect"], ["empty"], ["none"], ["empty", "none"], ["shuffled"],
                  ["perfect", "shuffled"], ["partial"], ["perfect", "partial", "none", "partial"], list(lines)):
        jar = meteor.evaluate([lines[n] for n in names])
        assert corpus_meteor([parse_stats(lines[n]) for n in names]) == pytest.approx(jar, rel=JAR_ULPS), names
    assert corpus_meteor([parse_stats(lines["perfect"])] * 2) == 1.0
    assert corpus_meteor([parse_stats(lines["empty"]), parse_stats(lines["none"])]) == 0.0
    assert 0 < corpus_meteor([parse_stats(lines["shuffled"])]) < 1


def test_a_malformed_statistics_line_is_one_error():
    with pytest.raises(EvalsError, match="answered 'Error: specify.*not 23 numbers"):
        parse_stats("Error: specify hypothesis and at least one reference")


def test_raw_predictions_are_tokenized_like_cocoevalcap():
    references = {"1": ["A dog runs.", "the dog runs fast"], "2": ["a red bus", "A bus, red!"]}
    raw = caption_scores({"1": "  A Dog,\nruns!  ", "2": "A RED bus\r\n"}, references)
    clean = caption_scores({"1": "a dog runs", "2": "a red bus"}, references)
    assert raw == clean
    assert ptb_tokenize(find_java(), ["  A Dog,\nruns!  ", "It's 2-story -- \"quoted\"", ""]) == [
        "a dog runs", "it 's 2-story quoted", ""]


def test_rouge_and_bleu_by_hand():
    # candidate "a dog runs" against "a dog runs fast": LCS 3, precision 1, recall 3/4
    scores = caption_scores({"1": "a dog runs"}, {"1": ["a dog runs fast"]}).scores
    precision, recall = 1.0, 0.75
    assert scores["ROUGE_L"] == pytest.approx(100 * (1 + BETA**2) * precision * recall / (recall + BETA**2 * precision), abs=1e-9)
    # every unigram matches; brevity penalty exp(1 - 4/3) (pycocoevalcap adds a 1e-9 smoothing)
    assert scores["Bleu_1"] == pytest.approx(100 * math.exp(1 - 4 / 3), abs=1e-6)


def test_cider_rewards_the_consensus_and_a_single_image_has_no_idf():
    references = {"1": ["a cat on a mat", "a cat sits on a mat"], "2": ["a red bus on a road", "a bus on the road"]}
    good = caption_scores({"1": "a cat on a mat", "2": "a bus on the road"}, references)
    bad = caption_scores({"1": "a bus on the road", "2": "a cat on a mat"}, references)
    assert good.scores["CIDEr"] > 100 and bad.scores["CIDEr"] < 10
    assert good.scores["CIDEr"] == pytest.approx(sum(good.per_image_cider.values()) / 2, abs=1e-9)
    # with one image every n-gram's document frequency equals the corpus size: idf, and CIDEr, are 0
    assert caption_scores({"1": "a cat sits"}, {"1": ["a cat sits"]}).scores["CIDEr"] == 0.0


def test_empty_prediction_scores_zero_without_shifting_the_others():
    references = {"1": ["a cat sits"], "2": ["a dog runs"]}
    result = caption_scores({"1": "", "2": "a dog runs"}, references)
    assert result.per_image_cider["1"] == 0.0
    assert result.scores["ROUGE_L"] == 50.0  # image 2 scores 1, image 1 scores 0


def test_missing_and_unknown_images():
    with pytest.raises(DataError, match="1 images without a prediction"):
        caption_scores({"1": "a cat"}, {"1": ["a cat"], "2": ["a dog"]})
    with pytest.raises(DataError, match="1 predictions for images without references"):
        caption_scores({"1": "a cat", "3": "a bird"}, {"1": ["a cat"]})
    with pytest.raises(DataError, match="without reference captions"):
        caption_scores({"1": "a cat"}, {"1": []})


def test_missing_java_names_the_fix(monkeypatch):
    monkeypatch.setattr(captioning.shutil, "which", lambda name: None)
    with pytest.raises(EvalsError) as error:
        caption_scores({"1": "a cat"}, {"1": ["a cat"]})
    assert str(error.value) == JAVA_MISSING
    assert "apt-get install default-jre-headless" in str(error.value)


@pytest.fixture
def broken_java(tmp_path) -> str:
    """A `java` that fails at once, as a JVM that cannot start does."""
    broken = tmp_path / "java"
    broken.write_text("#!/bin/sh\necho 'Error: Could not create the Java Virtual Machine.' >&2\nexit 1\n")
    broken.chmod(0o755)
    return str(broken)


def test_failing_java_is_one_error(broken_java):
    with pytest.raises(EvalsError, match="PTB tokenizer .* failed: exit status 1.*Could not create the Java Virtual Machine"):
        ptb_tokenize(broken_java, ["a cat"])
    meteor = Meteor(broken_java)
    with pytest.raises(EvalsError, match="METEOR .* stopped answering.*Could not create the Java Virtual Machine"):
        meteor.score({"1": ["a cat"]}, {"1": ["a cat"]})
    assert not meteor.usable()
    meteor.close()


def test_closing_meteor_after_its_jvm_died_does_not_raise(broken_java):
    # The JVM is gone before the first line is sent (the race that made the test above flaky, fixed here):
    # the write fails with BrokenPipeError and the line stays in stdin's buffer, which close() flushes again.
    meteor = Meteor(broken_java)
    meteor.process.wait()
    with pytest.raises(EvalsError, match="METEOR .* stopped answering.*Could not create the Java Virtual Machine") as error:
        meteor.score({"1": ["a cat"]}, {"1": ["a cat"]})
    assert isinstance(error.value.__context__, BrokenPipeError)
    meteor.close()
    meteor.close()  # again, as atexit does after an explicit close
    assert meteor.process.stdin.closed and meteor.process.stdout.closed and meteor.stderr.closed
