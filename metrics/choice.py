"""Answer extraction from generated text, as the official evaluations of MMMU, MMBench and MathVista do it
without an LLM judge, and the scoring rules that follow it. Pure functions; the tasks call them per sample.

- MMMU (Yue et al. 2023, arXiv 2311.16502), eval_utils.py: `mmmu_choice` (multiple choice) and
  `mmmu_open_predictions` / `mmmu_open_correct` (open questions).
- MMBench (Liu et al. 2023, arXiv 2307.06281), VLMEvalKit's rule step before its LLM judge: `mmbench_choice`;
  circular evaluation: `circular_scores`.
- MathVista (Lu et al. 2023, arXiv 2310.02255), extract_answer.py's rules before its GPT-4 call, then
  calculate_score.py's normalisation: `mathvista_extract`, `mathvista_normalize`.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Mapping, Sequence

from metrics.anls import levenshtein

LETTERS = "ABCDEFGHIJ"
MMMU_EDGE_PUNCTUATION = (",", ".", "!", "?", ";", ":", "'")  # stripped one after another, in this order
MMMU_KEY_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")


def last_of(candidates: Sequence[str], position: Callable[[str], int]) -> str:
    """The candidate found last in the text (the first listed on a tie, as numpy's argmax picks)."""
    return max(candidates, key=lambda c: (position(c), -candidates.index(c)))


def mmmu_choice(response: str, options: Mapping[str, str]) -> str | None:
    """The option letter MMMU's parse_multi_choice_response finds, or None where it would pick at random.

    In order: "(A)" forms; else a bare letter between spaces (edge punctuation stripped one character kind at a
    time in MMMU's order, so "B." ends as " B " but "B,." as " B, ");
    else, for a response of more than 5 words, an option's text inside it. Several candidates: the one that
    occurs last in the response.
    """
    for char in MMMU_EDGE_PUNCTUATION:  # one kind after another, not as a set: "B,." keeps its comma
        response = response.strip(char)
    text = " " + response + " "  # spaces avoid matching inside words
    bracketed = [letter for letter in options if f"({letter})" in text]
    if bracketed:
        return last_of(bracketed, lambda c: text.rfind(f"({c})"))
    bare = [letter for letter in options if f" {letter} " in text]
    if bare:
        return last_of(bare, lambda c: text.rfind(f" {c} "))
    if len(text.split()) > 5:
        lowered = text.lower()
        mentioned = [letter for letter, option in options.items() if option.lower() in lowered]
        if mentioned:
            return last_of(mentioned, lambda c: lowered.rfind(options[c].lower()))
    return None


def seeded_choice(letters: Sequence[str], seed_text: str) -> str:
    """MMMU's random fallback made reproducible: a draw seeded by a stable hash of `seed_text` (the query id)."""
    digest = hashlib.sha256(seed_text.encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big")).choice(list(letters))


def mmmu_normalize(text: str) -> list[str | float]:
    """A number becomes a float rounded to 2 places; other text is lowercased (one character gets spaces around
    it, so that "a" does not match inside every word)."""
    text = text.strip()
    try:
        return [round(float(text.replace(",", "")), 2)]
    except ValueError:
        text = text.lower()
        return [" " + text, text + " "] if len(text) == 1 else [text]


NUMBER_PATTERNS = (
    r"-?\b\d{1,3}(?:,\d{3})+\b",  # with thousands separators
    r"-?\d+(?:\.\d+)?[eE][+-]?\d+",  # scientific notation
    r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])",  # plain
)


def shortest_tail(sentence: str, indicators: Sequence[str]) -> str:
    """MMMU's shortest tail after an answer indicator, indicators taken in order: an empty tail held so far is
    replaced by the next indicator's tail whatever its length (so "" survives only when it comes last)."""
    shortest = ""
    for indicator in indicators:
        if indicator in sentence:
            tail = sentence.split(indicator)[-1].strip()
            if not shortest or len(tail) < len(shortest):
                shortest = tail
    return shortest


def key_responses(response: str) -> list[str]:
    """The tail of each sentence after its answer indicator ("so ", "is ", ...; "=" in the last), shortest kept."""
    response = response.strip().strip(".").lower()
    sentences = re.split(r"\.\s(?=[A-Z])|\n", response)
    keys = []
    for index, sentence in enumerate(sentences):
        indicators = MMMU_KEY_INDICATORS + (("=",) if index == len(sentences) - 1 else ())
        shortest = shortest_tail(sentence, indicators)
        if shortest and shortest not in (":", ",", ".", "!", "?", ";", "'"):
            keys.append(shortest)
    return keys or [response]


def mmmu_open_predictions(response: str) -> list[str | float]:
    """MMMU's parse_open_response: the key responses and every number in them, normalised, without repeats."""
    keys = key_responses(response)
    numbers = [n for key in keys for pattern in NUMBER_PATTERNS for n in re.findall(pattern, key)]
    found: list[str | float] = []
    for text in keys + numbers:
        found += [value for value in mmmu_normalize(text) if value not in found]
    return found


def mmmu_open_correct(golds: Sequence[str], predictions: Sequence[str | float]) -> bool:
    """A string prediction is right when it contains a normalised gold string; a number when it equals a gold."""
    normalized = [value for gold in golds for value in mmmu_normalize(gold)]
    for prediction in predictions:
        if isinstance(prediction, str):
            if any(isinstance(gold, str) and gold in prediction for gold in normalized):
                return True
        elif prediction in normalized:
            return True
    return False


def mmbench_choice(answer: str, options: Mapping[str, str]) -> str | None:
    """The option VLMEvalKit's rules infer, or None (then its LLM judge would be asked; here: no answer).

    First a letter: punctuation becomes spaces, and exactly one option letter among the words chooses it (its
    "A might be an article" guard is on only in verbose mode, so off here). Else the option whose text,
    lowercased, is the only one contained in the lowercased answer.
    """
    words = re.sub(r"[.()\[\],:;!*#{}]", " ", answer).split()
    letters = [letter for letter in options if letter in words]
    if len(letters) == 1:
        return letters[0]
    lowered = answer.lower()
    contained = [letter for letter, option in options.items() if str(option).lower() in lowered]
    return contained[0] if len(contained) == 1 else None


def circular_scores(correct: Mapping[str, bool], question_of: Mapping[str, str], first_pass: set[str]) -> tuple[float, float]:
    """(circular, vanilla) accuracy on 0-100: a question counts under circular evaluation only when every one of
    its passes is correct, under vanilla when its first pass (the options in their original order) is."""
    passes: dict[str, list[bool]] = {}
    for query_id, right in correct.items():
        passes.setdefault(question_of[query_id], []).append(right)
    circular = sum(all(group) for group in passes.values())
    vanilla = sum(correct[query_id] for query_id in first_pass)
    return 100.0 * circular / len(passes), 100.0 * vanilla / len(first_pass)


def plain_number(text: str, kind: type) -> str | None:
    try:
        return str(kind(text))
    except ValueError:
        return None


def mathvista_extract(response: str, question_type: str, answer_type: str, choices: Sequence[str]) -> str:
    """The answer text: MathVista's rules before its GPT-4 call (the response is a choice; it parses as the
    integer or float asked for), then this harness's documented fallback instead of the LLM: for a numeric
    answer the last number in the response, for a multiple choice a "(B)" / bare-letter / choice-text mention
    (MMMU's rules), else the response itself (normalisation then takes the most similar choice)."""
    response = response.strip()
    if not response or (question_type == "multi_choice" and response in choices):
        return response
    if answer_type in ("integer", "float"):
        exact = plain_number(response, int if answer_type == "integer" else float)
        if exact is not None:
            return exact
    if question_type == "multi_choice":
        letter = mmmu_choice(response, dict(zip(LETTERS, choices)))
        return letter if letter is not None else response
    if answer_type in ("integer", "float"):
        numbers = re.findall(r"-?\d+(?:,\d{3})*(?:\.\d+)?|-?\.\d+", response)
        return numbers[-1].replace(",", "") if numbers else response
    return response


def mathvista_normalize(extraction: str, choices: Sequence[str], question_type: str, answer_type: str,
                        precision: int | None) -> str | None:
    """calculate_score.py's normalize_extracted_answer (lupantech/MathVista, evaluation/, as of commit e999481): a
    letter (or "(B) ...") picks its choice, other text the most similar choice by edit distance; an integer is
    str(int(float(x))) (truncated); a float str(round(float(x), precision)), and None when its precision is None
    (the official int(None) fails); a list or text answer stays as it is. None (it then equals no answer) wherever
    the official code's `except Exception` returns None: text that is no number, and "inf", "-inf", "1e400",
    "nan" for an integer (int() of them fails); a float keeps them as "inf", "nan", which match no answer."""
    if question_type == "multi_choice":
        extraction = extraction.strip()
        bracketed = re.findall(r"\(([a-zA-Z])\)", extraction)
        if bracketed:
            extraction = bracketed[0].upper()
        letters = tuple(LETTERS[: len(choices)])
        if extraction and extraction in letters:
            return choices[letters.index(extraction)]
        return min(choices, key=lambda choice: levenshtein(extraction, choice))  # the first on a tie
    try:
        if answer_type == "integer":
            return str(int(float(extraction)))
        if answer_type == "float":
            return None if precision is None else str(round(float(extraction), precision))
    except (ValueError, OverflowError):  # float() of text, int() of nan (ValueError) or of +-inf (OverflowError)
        return None
    return str(extraction)
