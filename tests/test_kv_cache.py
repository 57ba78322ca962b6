"""The in-place KV cache (arc_kit.solve.kv_cache) against transformers' DynamicCache and against recomputation.

Greedy and depth-first search must be exact with it (same tokens, same NLLs), cropping and extending it must equal
running the whole sequence again, and its buffers must stay where they were allocated while a batch decodes.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from arc_kit.config.run import SettingsError, SolverSettings
from arc_kit.core.formats import ARC_KIT_FORMAT
from arc_kit.core.tasks import Pair
from arc_kit.models.loading import LoadedModel
from arc_kit.solve.decoding import DecodeRequest, GreedyDecoder
from arc_kit.solve.dfs import answer_token_ids, dfs_candidates
from arc_kit.solve.kv_cache import CacheRejected, InPlaceLayer, check_filled, new_cache

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_prompt(seed: int, length: int) -> tuple[int, ...]:
    return tuple(random.Random(seed).randrange(5, 26) for _ in range(length))


def mixed_batch() -> list[DecodeRequest]:
    """Six prompts of different lengths (left padding) and bounds (rows leave the batch at different steps)."""
    return [DecodeRequest(i, random_prompt(i, 30 + 17 * i), 4 + 5 * i) for i in range(6)]


def test_greedy_in_place_equals_dynamic_tokens_and_nlls(loaded: LoadedModel) -> None:
    requests = mixed_batch()
    inplace = GreedyDecoder.for_config(loaded.model, loaded.tokenizer, "cpu", SolverSettings(batch_size=8, kv_cache="inplace"))
    dynamic = GreedyDecoder.for_config(loaded.model, loaded.tokenizer, "cpu", SolverSettings(batch_size=8, kv_cache="dynamic"))
    got, want = inplace.decode(requests), dynamic.decode(requests)
    assert inplace.kv_cache == "inplace"  # no silent fallback: the in-place cache really ran
    assert [g.token_ids for g in got] == [g.token_ids for g in want]
    assert [len(g.token_ids) for g in got] == [r.max_new_tokens for r in requests]  # rows dropped at their bounds
    for a, b in zip(got, want, strict=True):
        assert a.nll == pytest.approx(b.nll, abs=1e-5)


def test_the_buffers_are_not_reallocated_while_decoding(loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first layer's buffers keep their address from the prefill to the last step, across rows dropping."""
    caches: list[Any] = []
    real_new_cache = new_cache

    def recording(kind: str, config: Any, capacity: int) -> Any:
        caches.append(real_new_cache(kind, config, capacity))
        return caches[-1]

    monkeypatch.setattr("arc_kit.solve.kv_cache.new_cache", recording)
    addresses: list[tuple[int, int, int]] = []

    def stamp(*_: Any) -> None:
        layer = caches[-1].layers[0]
        addresses.append((layer.key_buffer.data_ptr(), layer.value_buffer.data_ptr(), layer.keys.shape[0]))

    handle = loaded.model.register_forward_hook(stamp)
    try:
        gens = GreedyDecoder.for_config(loaded.model, loaded.tokenizer, "cpu", SolverSettings(batch_size=8)).decode(mixed_batch())
    finally:
        handle.remove()
    assert len(caches) == 1 and isinstance(caches[0].layers[0], InPlaceLayer)
    assert len(addresses) == max(len(g.token_ids) for g in gens)  # the prefill, then one forward per later step
    assert len({a[:2] for a in addresses}) == 1, "a buffer moved during decoding"
    assert addresses[0][2] == 6 and addresses[-1][2] == 1  # rows did leave the batch in between


def test_crop_then_extend_equals_recomputing(loaded: LoadedModel) -> None:
    """Prefill, extend by a branch, crop back, take another branch: the logits and keys are those of the new
    sequence run from scratch, whether the cache had room (capacity 64) or had to grow at the branch (capacity 4)."""
    model = loaded.model
    prompt, branch, other = random_prompt(7, 40), [5, 6, 7, 8], [9, 10, 11]
    for capacity in (64, 4):
        cache = new_cache("inplace", model.config, capacity)
        dynamic = new_cache("dynamic", model.config, capacity)
        with torch.inference_mode():
            for c in (cache, dynamic):
                model(input_ids=torch.tensor([prompt]), past_key_values=c, use_cache=True)
                model(input_ids=torch.tensor([branch]), position_ids=torch.arange(40, 44)[None], past_key_values=c,
                      use_cache=True)
                c.crop(-3)  # back to prompt + branch[:1]
                assert c.get_seq_length() == len(prompt) + 1
            positions = torch.arange(len(prompt) + 1, len(prompt) + 1 + len(other))[None]
            logits = model(input_ids=torch.tensor([other]), position_ids=positions, past_key_values=cache,
                           use_cache=True).logits
            model(input_ids=torch.tensor([other]), position_ids=positions, past_key_values=dynamic, use_cache=True)
            fresh = model(input_ids=torch.tensor([[*prompt, branch[0], *other]]), use_cache=False).logits
        assert torch.allclose(logits[0], fresh[0, -len(other) :], atol=1e-5)
        assert cache.layers[0].key_buffer.shape[-2] == (64 if capacity == 64 else 80)  # grew by doubling 40
        for layer, reference in zip(cache.layers, dynamic.layers, strict=True):
            assert isinstance(layer, InPlaceLayer)
            assert torch.equal(layer.keys, reference.keys) and torch.equal(layer.values, reference.values)


@pytest.fixture(scope="module")
def arc_prompt(loaded: LoadedModel) -> tuple[int, ...]:
    train = (Pair(((1, 0), (0, 1)), ((0, 1), (1, 0))), Pair(((2, 2, 0), (0, 0, 0)), ((0, 0, 0), (2, 2, 0))))
    text = ARC_KIT_FORMAT.render(loaded.tokenizer, train, ((3, 0), (0, 3))).prompt
    return tuple(loaded.tokenizer(text, add_special_tokens=False)["input_ids"])


def test_dfs_in_place_equals_dynamic(loaded: LoadedModel, arc_prompt: tuple[int, ...]) -> None:
    expand, end = answer_token_ids(loaded.tokenizer, ARC_KIT_FORMAT)
    results = {kind: dfs_candidates(loaded.model, arc_prompt, min_probability=1e-3, expand_ids=expand, end_ids=end, max_new_tokens=4, max_candidates_per_view=10_000, kv_cache=kind, device="cpu", prefill_chunk_tokens=2048)
               for kind in ("inplace", "dynamic")}
    got, want = results["inplace"], results["dynamic"]
    assert len(want.candidates) >= 5 and want.forward_passes > 40  # many crops, a real check
    assert [c.token_ids for c in got.candidates] == [c.token_ids for c in want.candidates]
    for a, b in zip(got.candidates, want.candidates, strict=True):
        assert a.nll == pytest.approx(b.nll, abs=1e-5)
    assert got.forward_passes == want.forward_passes


class RefusesInPlace:
    """A model whose forward raises on the in-place cache, as a patched forward with its own cache handling may."""

    def __init__(self, model: Any):
        self.model, self.config, self.generation_config = model, model.config, model.generation_config
        self.refusals = 0

    def __call__(self, **kwargs: Any) -> Any:
        if any(isinstance(layer, InPlaceLayer) for layer in kwargs["past_key_values"].layers):
            self.refusals += 1
            raise TypeError("this forward wants a DynamicCache")
        return self.model(**kwargs)


def test_a_model_that_refuses_the_cache_falls_back_to_dynamic(loaded: LoadedModel,
                                                              arc_prompt: tuple[int, ...]) -> None:
    requests = mixed_batch()
    want = GreedyDecoder.for_config(loaded.model, loaded.tokenizer, "cpu", SolverSettings(batch_size=2, kv_cache="dynamic")).decode(requests)
    refusing = RefusesInPlace(loaded.model)
    decoder = GreedyDecoder.for_config(refusing, loaded.tokenizer, "cpu", SolverSettings(batch_size=2))
    assert [g.token_ids for g in decoder.decode(requests)] == [g.token_ids for g in want]
    assert decoder.kv_cache == "dynamic" and refusing.refusals == 1  # refused once, not once per batch
    expand, end = answer_token_ids(loaded.tokenizer, ARC_KIT_FORMAT)
    kwargs = {"min_probability": 1e-2, "expand_ids": expand, "end_ids": end, "max_new_tokens": 3,
              "max_candidates_per_view": 32, "device": "cpu", "prefill_chunk_tokens": 2048}
    fallen = dfs_candidates(RefusesInPlace(loaded.model), arc_prompt, kv_cache="inplace", **kwargs)
    assert fallen.candidates == dfs_candidates(loaded.model, arc_prompt, kv_cache="dynamic", **kwargs).candidates


def test_a_cache_the_model_did_not_fill_is_rejected(loaded: LoadedModel) -> None:
    cache = new_cache("inplace", loaded.model.config, 16)
    with pytest.raises(CacheRejected):
        check_filled(cache, 10)
    with torch.inference_mode():
        loaded.model(input_ids=torch.tensor([random_prompt(1, 10)]), past_key_values=cache, use_cache=True)
    check_filled(cache, 10)


def test_the_kv_cache_setting_is_checked_and_a_flag() -> None:
    from arc_kit.cli.flags import config_from_args
    from arc_kit.cli.main import build_parser

    assert SolverSettings().kv_cache == "inplace"
    with pytest.raises(SettingsError, match="kv_cache"):
        SolverSettings(kv_cache="static").check()
    with pytest.raises(ValueError, match="kv_cache"):
        new_cache("static", None, 8)
    args = build_parser().parse_args(["dry-run", "--model", "m", "--challenges", "arc-agi-1/evaluation",
                                      "--out", "o", "--kv-cache", "dynamic"])
    assert config_from_args(args).solver.kv_cache == "dynamic"
