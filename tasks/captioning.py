"""Image captioning scored with CIDEr-D: COCO (Chen et al. 2015, arXiv 1504.00325) and Flickr30k (Young et al. 2014)
on the Karpathy split (Karpathy & Fei-Fei 2015, arXiv 1412.2306), NoCaps (Agrawal et al. 2019, arXiv 1812.08658),
TextCaps (Sidorov et al. 2020, arXiv 2003.12462), and the bundled synthetic demo set in COCO Karpathy format."""

from __future__ import annotations

import hashlib
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evals.errors import DataError
from evals.records import Example, GenerationParams, ImageRef
from evals.registry import TASKS
from tasks.base import (FileReader, MetricResult, Resampling, Task, checked_id, checked_text, cut_at_stop_words, optional_text,
                        per_query_mean, read_json, require, require_id, require_list, require_text, require_texts, some_records,
                        type_name)
from tasks.hf import HFSpec, Row

DEMO_ROOT = Path(__file__).parent / "demo" / "captioning"


@dataclass(frozen=True)
class KarpathyFiles:
    """A Karpathy-split JSON: `images` [{filename, split, sentences: [{raw, tokens}], ...}], images at `image`
    (formatted with the entry's fields). The support split "train" is Karpathy's train plus restval (the
    val2014 images outside Karpathy val/test: 113,287 COCO images), the usual training set of COCO captioners;
    OpenFlamingo drew its demonstrations from "train" alone (82,783): declare `merged={}` for that. Flickr30k
    has no restval, so the union changes nothing there."""

    annotations: str
    image: str
    id_field: str  # COCO: cocoid; Flickr30k: filename, whose stem is the Flickr id its scorers key on
    merged: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: {"train": ("train", "restval")})

    @property
    def layout(self) -> str:
        return f"{self.annotations} (support: train + restval; queries: test), images {self.image}"

    def load(self, root: Path, split: str) -> list[Example]:
        path = root / self.annotations
        wanted = self.merged.get(split, (split,))
        examples = []
        for i, entry in enumerate(some_records(require_list(read_json(path), "images", path, "the top level"), path, "images")):
            if require_text(entry, "split", path, f"image #{i}") not in wanted:
                continue
            key = require_id(entry, self.id_field, path, f"image #{i}")
            where = f"image {key}"
            relative = self.image.format(**{name: require_text(entry, name, path, where) for name in image_fields(self.image)})
            sentences = require(entry, "sentences", path, where)
            examples.append(Example(
                id=Path(key).stem if self.id_field == "filename" else key,
                images=(ImageRef(relative, root / relative),),
                fields={},
                references=caption_texts(sentences, f"{path}: {where}: field 'sentences'"),
            ))
        if not examples:
            raise DataError(f"{path}: no image has 'split' in {list(wanted)}")
        return examples


@dataclass(frozen=True)
class CocoStyleCaptions:
    """A COCO-format caption file: `images` [{id, file_name, domain?}], `annotations` [{image_id, caption}].
    NoCaps ships its validation references this way; its images (from Open Images) sit at `image`."""

    annotations: str
    image: str

    @property
    def layout(self) -> str:
        return f"{self.annotations} ({{split}}: val), images {self.image}"

    def load(self, root: Path, split: str) -> list[Example]:
        path = root / self.annotations.format(split=split)
        payload = read_json(path)
        captions: dict[str, list[str]] = {}
        for i, annotation in enumerate(require_list(payload, "annotations", path, "the top level")):
            image_id = require_id(annotation, "image_id", path, f"annotation #{i}")
            captions.setdefault(image_id, []).append(require_text(annotation, "caption", path, f"annotation #{i}"))
        examples = []
        for i, image in enumerate(some_records(require_list(payload, "images", path, "the top level"), path, "images")):
            image_id = require_id(image, "id", path, f"image #{i}")
            where = f"image {image_id}"
            relative = self.image.format(split=split, file_name=require_text(image, "file_name", path, where))
            if image_id not in captions:
                raise DataError(f"{path}: image {image_id} has no caption in 'annotations'")
            examples.append(Example(image_id, (ImageRef(relative, root / relative),), {}, tuple(captions.pop(image_id)),
                                    meta={"domain": optional_text(image, "domain", path, where)}))
        if captions:
            raise DataError(f"{path}: 'annotations' name image_id {next(iter(captions))}, which is not in 'images'")
        return examples


@dataclass(frozen=True)
class BorrowedSupport:
    """A benchmark with no train split whose demonstrations come from another benchmark's files, as the
    IDEFICS and OpenFlamingo evaluations drew NoCaps shots from COCO Karpathy train. The lender's folder is
    looked up inside this benchmark's folder first, then beside it (DATA_DIR/<lender>); its example ids get
    the lender's name as a prefix so they can never collide with this benchmark's query ids."""

    own: FileReader
    lender: FileReader
    lender_folder: str
    lender_split: str = "train"

    @property
    def support_split(self) -> str:
        return f"{self.lender_folder}_{self.lender_split}"

    @property
    def layout(self) -> str:
        return (f"{self.own.layout}; demonstrations ('{self.support_split}') from {self.lender_folder}/ beside this folder "
                f"or inside it: {self.lender.layout}")

    def load(self, root: Path, split: str) -> list[Example]:
        if split != self.support_split:
            return self.own.load(root, split)
        inside, beside = root / self.lender_folder, root.parent / self.lender_folder
        folder = inside if inside.is_dir() else beside
        if not folder.is_dir():
            raise DataError(f"{root}: demonstrations come from {self.lender_folder}/ ({self.lender.layout}); "
                            f"found neither {inside} nor {beside}")
        return [replace(e, id=f"{self.lender_folder}/{e.id}") for e in self.lender.load(folder, self.lender_split)]


@dataclass(frozen=True)
class TextCapsFiles:
    """TextCaps 0.1: one JSON per split with a `data` list holding one entry per caption (image_id, caption_str,
    reference_strs: all captions of the image, optional ocr_tokens); grouped here into one example per image.
    TextCaps reuses TextVQA's images: train AND val images are in train_images/."""

    captions: str = "TextCaps_0.1_{split}.json"
    image: str = "train_images/{image_id}.jpg"

    @property
    def layout(self) -> str:
        return f"{self.captions} ({{split}}: train, val), images {self.image} (val images too)"

    def load(self, root: Path, split: str) -> list[Example]:
        path = root / self.captions.format(split=split)
        grouped: dict[str, list[Mapping]] = {}
        for i, entry in enumerate(some_records(require_list(read_json(path), "data", path, "the top level"), path, "entries")):
            grouped.setdefault(require_id(entry, "image_id", path, f"entry #{i}"), []).append(entry)
        return [self.example(root, path, image_id, entries) for image_id, entries in grouped.items()]

    def example(self, root: Path, path: Path, image_id: str, entries: list[Mapping]) -> Example:
        where = f"image {image_id}"
        if "reference_strs" in entries[0]:
            references = caption_texts(entries[0]["reference_strs"], f"{path}: {where}: field 'reference_strs'")
        else:
            references = tuple(require_text(e, "caption_str", path, where) for e in entries)
        tokens = require_texts(entries[0], "ocr_tokens", path, where) if "ocr_tokens" in entries[0] else []
        relative = self.image.format(image_id=image_id)
        return Example(image_id, (ImageRef(f"train_images/{image_id}", root / relative),), {"ocr": " ".join(tokens)}, references)


def image_fields(pattern: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(pattern) if name]


def caption_texts(captions: Any, where: str) -> tuple[str, ...]:
    """Reference captions given as strings or as objects holding the text under "raw" (Karpathy files) or "caption";
    a `datasets` Sequence of such objects arrives as one object of lists."""
    if isinstance(captions, Mapping):
        captions = next((captions[k] for k in ("raw", "caption") if isinstance(captions.get(k), list)), captions)
    if not isinstance(captions, (list, tuple)) or not captions:
        raise DataError(f"{where}: no list of reference captions")
    texts = []
    for n, caption in enumerate(captions):
        if isinstance(caption, Mapping):
            key = next((k for k in ("raw", "caption") if k in caption), None)
            if key is None:
                raise DataError(f"{where}: a reference caption has no field 'raw' (or 'caption')")
            caption = caption[key]
        if not isinstance(caption, str):
            raise DataError(f"{where}: reference caption #{n} is {type_name(caption)}, not a string")
        texts.append(caption)
    return tuple(texts)


def seeded_reference(example: Example) -> str:
    """A demonstration's caption: one reference picked by a hash of the example id, so the same example always
    shows the same caption whatever the run's seed, order or sharding (PROTOCOL.md: random, seeded; OpenFlamingo
    always showed the first reference)."""
    digest = hashlib.sha256(f"caption-shot\x1f{example.id}".encode()).digest()
    chosen = example.references[int.from_bytes(digest[:8], "big") % len(example.references)]
    return " ".join(chosen.split())  # a line break inside a caption would end the demonstration early


def postprocess_caption(output: str, stops: Sequence[str]) -> str:
    return cut_at_stop_words(output, stops)


def score_captions(predictions: Mapping[str, str], examples: Sequence[Example]) -> MetricResult:
    """pycocoevalcap's scores over the whole evaluated set; NoCaps also per domain, each domain scored on its own."""
    from metrics.captioning import caption_scores

    result = caption_scores({e.id: predictions[e.id] for e in examples}, {e.id: e.references for e in examples})
    domains = sorted({e.meta.get("domain", "") for e in examples} - {""})
    breakdowns = {}
    if domains:
        breakdowns["CIDEr_by_domain"] = {
            d: caption_scores({e.id: predictions[e.id] for e in examples if e.meta.get("domain") == d},
                              {e.id: e.references for e in examples if e.meta.get("domain") == d}).scores["CIDEr"]
            for d in domains
        }
    return MetricResult(scores=dict(result.scores), per_sample=dict(result.per_image_cider), breakdowns=breakdowns,
                        resampling=caption_resampling(result))


def caption_resampling(result) -> dict[str, Resampling]:
    """How each caption score is recomputed on a resample of the scored images (`result`: a CaptionScores), for the
    cell's intervals and for the paired comparison (results.paired)."""
    ids = tuple(result.per_image_cider)
    return {"CIDEr": per_query_mean(result.per_image_cider, CIDER_RESAMPLING),
            "ROUGE_L": per_query_mean(result.per_image_rouge, "mean of per-image ROUGE-L"),
            **bleu_resampling(ids, result.bleu_counts), **meteor_resampling(ids, result.meteor_stats)}


def bleu_resampling(ids: tuple[str, ...], counts) -> dict[str, Resampling]:
    """BLEU-1..4 recomputed exactly on each resample from the redrawn images' summed counts (metrics.captioning)."""
    import numpy as np

    from metrics.captioning import corpus_bleu

    table = np.asarray(counts, dtype=np.float64)
    if not len(ids) or table.shape[0] != len(ids):
        return {}
    return {f"Bleu_{n}": Resampling(ids, f"BLEU-{n} recomputed from the redrawn images' n-gram counts",
                                    statistic=lambda positions, k=n - 1: corpus_bleu(table[positions].sum(axis=0))[k])
            for n in range(1, 5)}


def meteor_resampling(ids: tuple[str, ...], stats) -> dict[str, Resampling]:
    """METEOR recomputed exactly on each resample from the redrawn images' summed statistics (metrics.meteor), as the
    METEOR jar's EVAL aggregates them: no Java per resample."""
    from metrics.meteor import meteor_from_totals, summable

    table = summable(stats)
    if not len(ids) or table.shape[0] != len(ids):
        return {}
    return {"METEOR": Resampling(ids, METEOR_RESAMPLING,
                                 statistic=lambda positions: 100 * meteor_from_totals(table[positions].sum(axis=0)))}


METEOR_RESAMPLING = ("METEOR 1.5 recomputed from the redrawn images' summed match statistics "
                     "(English parameters of -l en -norm)")


# Rerunning pycocoevalcap (its Java tokenizer included) on 1,000 resamples is out of reach: CIDEr-D's interval redraws
# the per-image scores, whose idf is the full reference set's, so it is conditional on that reference corpus.
CIDER_RESAMPLING = ("mean of per-image CIDEr-D with document frequencies fixed from the full reference set "
                    "(conditional on the reference corpus)")


def caption_hf(splits: Mapping[str, str], hub_id: str, example_id: Callable[[Row], str], image_id: Callable[[Row], str],
               captions: tuple[str, ...]) -> HFSpec:
    """A Hugging Face copy of a captioning benchmark: an `image` column, the reference captions in the first of
    `captions` the dataset has (strings, or {raw}/{caption} objects); ids built to match the official files'."""

    def to_example(row: Row) -> Example:
        column = next((c for c in captions if c in row.values), None)
        if column is None:
            raise DataError(f"{row.where()}: no caption column (expected one of: {', '.join(captions)})")
        return Example(example_id(row), (row.image("image", image_id(row)),), {}, caption_texts(row.values[column], row.where()))

    return HFSpec(to_example=to_example, splits=splits, image_columns=("image",), hub_id=hub_id)


def row_text(row: Row, key: str) -> str:
    """A hub row's text field that builds an id or an image path: a number, list or null is refused, not written in."""
    return checked_text(row.get(key), key, row.where())


def caption_task(name: str, paper: str, files: FileReader, **overrides) -> Task:
    """Declare and register a captioning benchmark; a new one is a call to this."""
    settings = {
        "name": name, "paper": paper, "kind": "generate", "load": files.load, "support_split": "train", "query_split": "test",
        "template": "caption", "shot_answer": seeded_reference, "postprocess": postprocess_caption, "metric": score_captions,
        "headline": "CIDEr", "layout": files.layout, "submission_format": "captions",
        "generation": GenerationParams(max_new_tokens=20, num_beams=3, length_penalty=0.0),
    }
    return TASKS.add(name, Task(**{**settings, **overrides}))


COCO_FILES = KarpathyFiles("dataset_coco.json", "{filepath}/{filename}", "cocoid")
FLICKR_FILES = KarpathyFiles("dataset_flickr30k.json", "flickr30k_images/{filename}", "filename")
NOCAPS_FILES = BorrowedSupport(CocoStyleCaptions("nocaps_{split}_4500_captions.json", "{split}/{file_name}"), COCO_FILES, "coco")
COCO_HF = caption_hf({"train": "train", "test": "test"}, "HuggingFaceM4/COCO",
                     lambda r: checked_id(r.get("cocoid"), "cocoid", r.where()),
                     lambda r: f"{row_text(r, 'filepath')}/{row_text(r, 'filename')}", ("sentences_raw", "sentences"))

caption_task("coco", "Chen et al. 2015, arXiv 1504.00325 (Karpathy split)", COCO_FILES, data_folder="coco", hf=COCO_HF)
caption_task("flickr30k", "Young et al. 2014, TACL 2 (Karpathy split)", FLICKR_FILES, data_folder="flickr30k",
             hf=caption_hf({"train": "train", "test": "test"}, "", lambda r: Path(row_text(r, "filename")).stem,
                           lambda r: f"flickr30k_images/{row_text(r, 'filename')}", ("sentences_raw", "sentences", "caption")))
caption_task("nocaps", "Agrawal et al. 2019, arXiv 1812.08658", NOCAPS_FILES, data_folder="nocaps",
             support_split=NOCAPS_FILES.support_split, query_split="val")
caption_task("textcaps", "Sidorov et al. 2020, arXiv 2003.12462", TextCapsFiles(), data_folder="textcaps", query_split="val")
caption_task("demo_caption", "synthetic shapes in COCO Karpathy format (scripts/make_demo_data.py)", COCO_FILES,
             default_root=DEMO_ROOT, suites=("demo",))
