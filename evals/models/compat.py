"""What the harness needs of transformers that transformers does not promise, each assumption in one function here.

Output fields, cache internals and the arguments that carry precomputed image features have changed between
releases (5.24 moved IDEFICS' image features from `image_hidden_states` to `image_outputs`, stopped flattening
`perceiver_embeddings` and renamed the `past_key_values` argument to `cache`). Each function below states what it
assumes and has a test of its own in tests/test_compat.py, so the next upstream change fails one named test
instead of every test that runs a model. torch and transformers are imported inside functions only.
"""

from __future__ import annotations

import dataclasses
import inspect
from functools import cache


# --- IDEFICS image features -----------------------------------------------------------------------------------------


@cache
def idefics_outputs_carry_image_outputs() -> bool:
    """Whether IDEFICS outputs hold the vision side under `image_outputs` (transformers >= 5.24) rather than the
    post-perceiver features under `image_hidden_states` (<= 5.23). The two releases pass features through `generate`
    differently (see `idefics_generation_features`), so this one fact decides which features the cache keeps.
    Test: test_compat.py::test_idefics_output_fields."""
    from transformers.models.idefics.modeling_idefics import IdeficsCausalLMOutputWithPast

    return "image_outputs" in {field.name for field in dataclasses.fields(IdeficsCausalLMOutputWithPast)}


def idefics_generation_resamples(config) -> bool:
    """Whether `generate` runs the perceiver itself on the features it is given: on >= 5.24 `generate` hands
    `image_hidden_states` to the forward as `image_encoder_embeddings` (vision-tower output) at every step; on <= 5.23
    as `perceiver_embeddings` when the checkpoint has a perceiver."""
    return bool(config.use_resampler) and idefics_outputs_carry_image_outputs()


def idefics_vision_features(model, pixel_values):
    """The vision tower's per-token output for a batch of images (images, tokens, width): what the forward computes
    from `pixel_values` first. Assumes the tower at `model.model.vision_model` returning `last_hidden_state`.
    Test: test_compat.py::test_idefics_features_stand_in_for_pixels."""
    return model.model.vision_model(pixel_values=pixel_values).last_hidden_state


def idefics_resample(model, features):
    """The perceiver on (images, tokens, width) vision features, or the features as they are for a checkpoint
    without one. Assumes `model.model.perceiver_resampler` taking and returning 3-d tensors."""
    if not model.config.use_resampler:
        return features
    return model.model.perceiver_resampler(features)


def idefics_cached_features(model, pixel_values):
    """Per-image features in the form `generate` takes them (`idefics_generate_kwargs`): after the perceiver where
    `generate` will not run it again, the vision tower's output where it will."""
    features = idefics_vision_features(model, pixel_values)
    return features if idefics_generation_resamples(model.config) else idefics_resample(model, features)


def idefics_cached_feature_shape(config) -> tuple[int, int]:
    """(tokens, width) of one image's `idefics_cached_features`."""
    vision = config.vision_config
    if config.use_resampler and not idefics_generation_resamples(config):
        return config.perceiver_config.resampler_n_latents, vision.embed_dim
    return (vision.image_size // vision.patch_size) ** 2 + 1, vision.embed_dim


def idefics_generate_kwargs(features) -> dict:
    """`generate` arguments for (prompts, images, tokens, width) cached features. `image_hidden_states` is what IDEFICS'
    `prepare_inputs_for_generation` reads before and after the first step in every release since 5.0; generate expands
    it along the batch for beams like any model argument. Test: test_compat.py::test_idefics_generate_with_features."""
    return {"image_hidden_states": features}


def idefics_forward_features(model, features):
    """(prompts, images, tokens, width) features as a plain forward takes them after the perceiver: `features` are
    cached features, resampled here (once per call) where the cache holds vision-tower output."""
    if not idefics_generation_resamples(model.config):
        return features
    prompts, images = features.shape[:2]
    resampled = idefics_resample(model, features.flatten(0, 1))
    return resampled.view(prompts, images, *resampled.shape[1:])


def idefics_forward_kwargs(model, features) -> dict:
    """Forward arguments for (prompts, images, tokens, width) `idefics_forward_features`. <= 5.23 takes 4-d
    `perceiver_embeddings`; >= 5.24 takes them flattened to (prompts x images, tokens, width) (4-d ones are misread);
    `image_encoder_embeddings` are taken 4-d by both. Test: test_compat.py::test_idefics_features_stand_in_for_pixels."""
    if not model.config.use_resampler:
        return {"image_encoder_embeddings": features}
    if idefics_outputs_carry_image_outputs():
        return {"perceiver_embeddings": features.flatten(0, 1)}
    return {"perceiver_embeddings": features}


def idefics_pooled_features(model, pixel_values):
    """The vision tower's pooled output (images, width): the vision-tower RICES embedding. Assumes `pooler_output`.
    Test: test_compat.py::test_idefics_pooled_features."""
    return model.model.vision_model(pixel_values=pixel_values).pooler_output


# --- key/value cache ------------------------------------------------------------------------------------------------


def output_cache(output):
    """The key/value cache a forward with `use_cache=True` returned: the `cache` field (>= 5.24), else
    `past_key_values` (the older name, a deprecated property since). Test: test_compat.py::test_output_cache."""
    names = {field.name for field in dataclasses.fields(output)}
    return output.cache if "cache" in names else output.past_key_values


def cache_kwargs(model, past) -> dict:
    """The forward argument that continues from a cache: `cache` where the forward names it so (>= 5.24), else
    `past_key_values`. Test: test_compat.py::test_cache_rows_continue_the_prompt."""
    return {"cache": past} if "cache" in forward_parameters(model) else {"past_key_values": past}


def cache_rows(past, index, config):
    """A new DynamicCache holding, for each entry of `index`, a copy of that batch row's keys and values. Assumes the
    cache's `layers` with `keys`/`values` tensors (batch first) and `DynamicCache(ddp_cache_data=, config=)`.
    Test: test_compat.py::test_cache_rows_continue_the_prompt."""
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=[(layer.keys[index], layer.values[index]) for layer in past.layers], config=config)


# --- forward and generate arguments ---------------------------------------------------------------------------------


def forward_parameters(model) -> frozenset[str]:
    return frozenset(inspect.signature(model.forward).parameters)


def last_logits_kwargs(model) -> dict:
    """Ask the forward for the last position's logits only, where it can (`logits_to_keep`); callers take
    `logits[:, -1]` either way. Test: test_compat.py::test_last_logits_kwargs."""
    return {"logits_to_keep": 1} if "logits_to_keep" in forward_parameters(model) else {}


def stop_strings_kwargs(tokenizer, stops) -> dict:
    """`generate` arguments that end generation at text `stops` whatever their tokens (GenerationConfig's
    `stop_strings`, which needs the tokenizer). Test: test_compat.py::test_generate_takes_stop_strings."""
    return {"stop_strings": list(stops), "tokenizer": tokenizer} if stops else {}


def clip_image_features(model, pixel_values):
    """CLIP's projected image embeddings: `get_image_features` returns a tensor, or (in some releases) an output
    whose `pooler_output` holds it. Test: test_compat.py::test_clip_image_features."""
    features = model.get_image_features(pixel_values=pixel_values)
    return features if not hasattr(features, "pooler_output") else features.pooler_output


# --- placement over devices -------------------------------------------------------------------------------------------


def no_split_modules(model) -> list[str]:
    """The block classes a device map must keep whole (a decoder layer, a cross-attention layer): the model class's
    `_no_split_modules`, which transformers' own device_map="auto" reads (a list or a set, by release).
    Test: test_compat.py::test_no_split_modules."""
    return sorted(getattr(model, "_no_split_modules", None) or [])


def idefics_prompt_texts(tokenizer, prompts) -> list[str]:
    """The text IdeficsProcessor tokenizes for interleaved prompts, built without the pixel arrays it would also make:
    the start token as text, each text item stripped of spaces, `<fake_token_around_image><image><fake_token_around_image>`
    for an image (`<image><fake_token_around_image>` right after another), no end-of-utterance token (the harness
    never asks for one). Test: test_compat.py::test_idefics_prompt_texts."""
    from evals.records import TextSegment

    fake, image = "<fake_token_around_image>", "<image>"
    texts = []
    for prompt in prompts:
        text, last_was_image = tokenizer.bos_token, False
        for segment in prompt.segments:
            if isinstance(segment, TextSegment):
                text += segment.text.strip(" ")
            else:
                text += image + fake if last_was_image else fake + image + fake
            last_was_image = not isinstance(segment, TextSegment)
        texts.append(text)
    return texts
