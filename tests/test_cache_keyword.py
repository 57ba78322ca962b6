"""The decoders pass the KV cache under the keyword the model's forward names: no deprecation warning on
transformers >= 5.24 (``cache``), and still the cache on a forward that only knows ``past_key_values`` (Unsloth's
patched forwards, transformers < 5.24), where ``cache`` would vanish into ``**kwargs`` and silently drop the
context."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from arc_kit.config.run import SolverSettings
from arc_kit.core.formats import ARC_KIT_FORMAT
from arc_kit.core.tasks import Pair, Task
from arc_kit.models.loading import LoadedModel
from arc_kit.solve.decoding import DecodeRequest, GreedyDecoder
from arc_kit.solve.dfs import answer_token_ids, dfs_candidates, dfs_lockstep
from arc_kit.solve.kv_cache import cache_keyword
from arc_kit.solve.rescoring import candidate_nlls, scoring_views

torch = pytest.importorskip("torch")

TASK = Task("kw", (Pair(((1, 0), (0, 1)), ((0, 1), (1, 0))), Pair(((2, 2, 0), (0, 0, 0)), ((0, 0, 0), (2, 2, 0)))),
            (Pair(((3, 0), (0, 3)), ((0, 3), (3, 0))),))


def prompt_of(loaded: LoadedModel) -> tuple[int, ...]:
    text = ARC_KIT_FORMAT.render(loaded.tokenizer, TASK.train, TASK.test[0].input).prompt
    return tuple(loaded.tokenizer(text, add_special_tokens=False)["input_ids"])


def test_decoding_search_and_rescoring_raise_no_warning(loaded: LoadedModel) -> None:
    """Every model call of the solver with warnings as errors: greedy (both caches), both searches, re-scoring."""
    prompt = prompt_of(loaded)
    expand, end = answer_token_ids(loaded.tokenizer, ARC_KIT_FORMAT)
    search = {"min_probability": 1e-2, "expand_ids": expand, "end_ids": end, "max_candidates_per_view": 8,
              "device": "cpu", "prefill_chunk_tokens": 2048}
    views = scoring_views(TASK, 0, loaded.tokenizer, 2, 1, 4096, colour_views=True, prompt_format=ARC_KIT_FORMAT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for kind in ("inplace", "dynamic"):
            decoder = GreedyDecoder.for_config(loaded.model, loaded.tokenizer, "cpu",
                                               SolverSettings(batch_size=2, kv_cache=kind))
            decoder.decode([DecodeRequest(0, prompt, 4), DecodeRequest(1, prompt[2:], 4)])
            assert decoder.kv_cache == kind
            dfs_candidates(loaded.model, prompt, max_new_tokens=4, kv_cache=kind, **search)
        dfs_lockstep(loaded.model, [prompt, prompt[2:]], max_new_tokens=[4, 4], batch_size=2, batch_tokens=4096,
                     kv_cache="inplace",
                     **search)
        candidate_nlls(loaded.model, loaded.tokenizer, views, [((0, 3), (3, 0)), ((1,),)],
                       prompt_format=ARC_KIT_FORMAT, score_token_budget=4096, device="cpu")


class PastKeyValuesOnly:
    """A forward that names ``past_key_values`` and takes the rest as ``**kwargs``, as Unsloth's patched forwards
    do: a ``cache=`` keyword would land in ``kwargs`` unused."""

    def __init__(self, model: Any):
        self.model, self.config, self.generation_config = model, model.config, model.generation_config
        self.cache_given = 0

    def forward(self, input_ids: Any = None, past_key_values: Any = None, **kwargs: Any) -> Any:
        if "cache" in kwargs:
            raise AssertionError("cache= given to a forward that does not know it: the context would be lost")
        self.cache_given += past_key_values is not None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # the real model under it is transformers 5.24
            return self.model(input_ids=input_ids, past_key_values=past_key_values, **kwargs)

    __call__ = forward


def test_the_keyword_follows_the_forwards_signature(loaded: LoadedModel, tiny_model_dir: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    assert cache_keyword(loaded.model) == "cache"  # transformers 5.24's forward
    old = PastKeyValuesOnly(loaded.model)
    assert cache_keyword(old) == "past_key_values"
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        wrapped = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"]))
    assert cache_keyword(wrapped) == "cache"  # peft's forward hides it in **kwargs: the base model's decides
    # The old keyword still carries the cache: same tokens as the model itself.
    prompt = prompt_of(loaded)
    decoder = GreedyDecoder.for_config(old, loaded.tokenizer, "cpu", SolverSettings(batch_size=1))
    want = GreedyDecoder.for_config(loaded.model, loaded.tokenizer, "cpu", SolverSettings(batch_size=1))
    request = [DecodeRequest(0, prompt, 6)]
    assert [g.token_ids for g in decoder.decode(request)] == [g.token_ids for g in want.decode(request)]
    assert old.cache_given > 1 and decoder.kv_cache == "inplace"
