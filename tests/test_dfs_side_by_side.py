"""The lock-step search with a prompt's pending branches side by side in spare rows (``dfs_lockstep(...,
side_by_side=True)``, what the solver runs) against the sequential search, one node a pass: the same candidates
and NLLs, fewer passes, within the rows its token budget allows.

The prompts and the helpers are ``tests/test_dfs.py``'s, which checks the lock-step search without
spare rows pass for pass.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from test_dfs import (
    TEST_INPUT,
    TRAIN,
    _Clock,
    arc_view_prompts,
    as_dict,
    assert_sorted,
    one_thread,  # noqa: F401 - an autouse fixture: one torch thread here too
)

from arc_kit.core.formats import ARC_KIT_FORMAT
from arc_kit.solve import dfs as dfs_module
from arc_kit.solve.dfs import DfsResult, answer_token_ids, dfs_candidates, dfs_lockstep

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def arc(loaded: Any) -> SimpleNamespace:
    """The tiny model with ``tests/test_dfs.py``'s prompt and the ids its search expands and ends on."""
    tokenizer = loaded.tokenizer
    text = ARC_KIT_FORMAT.render(tokenizer, TRAIN, TEST_INPUT).prompt
    expand, end = answer_token_ids(tokenizer, ARC_KIT_FORMAT)
    return SimpleNamespace(model=loaded.model, tokenizer=tokenizer, expand=expand, end=end,
                           prompt=tuple(tokenizer(text, add_special_tokens=False)["input_ids"]))


def assert_same_search(got: DfsResult, want: DfsResult) -> None:
    """The same candidates in the same order, NLLs within 1e-4, and no more passes than the search alone."""
    assert [c.token_ids for c in got.candidates] == [c.token_ids for c in want.candidates]
    for a, b in zip(got.candidates, want.candidates, strict=True):
        assert a.nll == pytest.approx(b.nll, abs=1e-4)
    assert got.forward_passes <= want.forward_passes and got.timed_out == want.timed_out


def search_both_ways(model: Any, prompts: Sequence[Sequence[int]], bounds: Sequence[int], *, batch_size: int,
                     **kwargs: Any) -> tuple[list[DfsResult], Any]:
    common = {"max_candidates_per_view": 10_000, "device": "cpu", "prefill_chunk_tokens": 2048, **kwargs}
    sequential = [dfs_candidates(model, p, max_new_tokens=n, kv_cache="inplace", **common)
                  for p, n in zip(prompts, bounds, strict=True)]
    together = dfs_lockstep(model, prompts, max_new_tokens=bounds, batch_size=batch_size, batch_tokens=1 << 20,
                            kv_cache="inplace", side_by_side=True, **common)
    return sequential, together


def lockstep_kwargs(arc: SimpleNamespace, **kwargs: Any) -> dict[str, Any]:
    return {"min_probability": 2e-3, "expand_ids": arc.expand, "end_ids": arc.end, "max_candidates_per_view": 10_000,
            "device": "cpu", "prefill_chunk_tokens": 2048, "batch_size": 8, "batch_tokens": 1 << 20,
            "kv_cache": "inplace", "side_by_side": True, **kwargs}


def alone(arc: SimpleNamespace, prompt: Sequence[int], bound: int, **kwargs: Any) -> DfsResult:
    """``prompt`` searched by itself, one node a pass: the reference."""
    search = {k: v for k, v in lockstep_kwargs(arc, **kwargs).items()
              if not k.startswith("batch") and k != "side_by_side"}
    return dfs_candidates(arc.model, prompt, max_new_tokens=bound, **search)


def recording_forward(model: Any, monkeypatch: pytest.MonkeyPatch, rows_that_fit: int | None = None) -> list:
    """Patch ``model.forward`` to record, per call, (rows fed, rows the cache's buffers hold); with
    ``rows_that_fit``, a call of more rows raises out of memory, as a GPU would."""
    from arc_kit.solve.kv_cache import cache_keyword

    real, keyword, seen = model.forward, cache_keyword(model), []

    @functools.wraps(real)
    def forward(*args: Any, **kwargs: Any) -> Any:
        rows = kwargs["input_ids"].shape[0]
        if rows_that_fit is not None and rows > rows_that_fit:
            seen.append((rows, None))
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        out = real(*args, **kwargs)
        seen.append((rows, max(layer.key_buffer.shape[0] for layer in kwargs[keyword].layers)))
        return out

    monkeypatch.setattr(model, "forward", forward)
    return seen


def assert_found_the_same_in_fewer_passes(sequential: list[DfsResult], together: Any, at_least: int) -> None:
    """Each prompt's search as alone; the batch (one batch) as many passes as its longest search, fewer than that
    search alone; ``at_least`` candidates in all, or the threshold tested nothing."""
    for got, want in zip(together.results, sequential, strict=True):
        assert_same_search(got, want)
    assert sum(len(r.candidates) for r in sequential) >= at_least, "p too high to test anything"
    if together.batches == 1:
        assert together.forward_passes == max(r.forward_passes for r in together.results)
        assert together.forward_passes < max(r.forward_passes for r in sequential)


@pytest.mark.parametrize("keep_greedy", [False, True])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_side_by_side_finds_what_one_node_a_pass_finds(arc: SimpleNamespace, keep_greedy: bool,
                                                       batch_size: int) -> None:
    """The lock-step search one node a pass is the sequential search, pass for pass (``tests/test_dfs.py``); with
    the branches side by side it finds the same in fewer passes, at every batch size."""
    prompts = arc_view_prompts(arc.tokenizer)
    bounds = [3 + i % 3 for i in range(len(prompts))]  # rows hit their bounds at different depths
    kwargs = lockstep_kwargs(arc, batch_size=batch_size, keep_greedy=keep_greedy)
    one_node = dfs_lockstep(arc.model, prompts, max_new_tokens=bounds, **{**kwargs, "side_by_side": False})
    together = dfs_lockstep(arc.model, prompts, max_new_tokens=bounds, **kwargs)
    assert together.kv_cache == "inplace" and together.batches == one_node.batches == -(-len(prompts) // batch_size)
    assert_found_the_same_in_fewer_passes(one_node.results, together, at_least=16)


@pytest.fixture(scope="module")
def llama_24m(arc_tokenizer: Any) -> SimpleNamespace:
    """A Llama-shaped model of 24M parameters (8 layers, 4:1 grouped KV heads: ``select_rows`` copies the rows of
    every layer), sharpened so that completions differ in likelihood, and random prompts of four lengths."""
    import random

    from arc_kit.models.tiny import TinyModelShape, build_tiny_model

    shape = TinyModelShape(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
                           num_key_value_heads=2, seed=0)
    model = build_tiny_model(arc_tokenizer, shape).eval()
    with torch.no_grad():
        model.model.norm.weight.mul_(3.0)
    rng, vocabulary = random.Random(3), len(arc_tokenizer)
    expand, end = answer_token_ids(arc_tokenizer, ARC_KIT_FORMAT)
    return SimpleNamespace(model=model, expand=expand, end=end,
                           prompts=[tuple(rng.randrange(5, vocabulary) for _ in range(length))
                                    for length in (48, 48, 61, 61, 61, 75)])


def test_side_by_side_equals_the_sequential_search_on_a_24m_llama(llama_24m: SimpleNamespace) -> None:
    sequential, together = search_both_ways(llama_24m.model, llama_24m.prompts, [5] * len(llama_24m.prompts),
                                            batch_size=8, min_probability=3e-3, expand_ids=llama_24m.expand,
                                            end_ids=llama_24m.end)
    assert_found_the_same_in_fewer_passes(sequential, together, at_least=8)


@pytest.mark.parametrize(("passes", "rows"), [(1, 8), (4, 8), (1, None), (2, None)],
                         ids=["1-one-row-each", "4-one-row-each", "1-spare-rows", "2-spare-rows"])
def test_side_by_side_stops_at_the_deadline_with_what_it_found(arc: SimpleNamespace,
                                                               monkeypatch: pytest.MonkeyPatch, passes: int,
                                                               rows: int | None) -> None:
    """``rows``: the token budget allows that many rows (8: a row per prompt, spare rows only where a search has
    ended), or as many as the searches can use (None)."""
    prompts = arc_view_prompts(arc.tokenizer)
    budget = 1 << 20 if rows is None else rows * (max(len(p) for p in prompts) + 5)

    def search(**kwargs: Any) -> Any:
        return dfs_lockstep(arc.model, prompts, max_new_tokens=[5] * len(prompts),
                            **lockstep_kwargs(arc, batch_tokens=budget, **kwargs))

    full = search()
    assert full.forward_passes > passes
    monkeypatch.setattr(dfs_module, "time", _Clock(passes))  # the deadline is read once before each pass
    stopped = search(stop_at=1.0)
    assert stopped.forward_passes == passes and all(r.timed_out for r in stopped.results)
    for got, want in zip(stopped.results, full.results, strict=True):
        assert set(as_dict(got).items()) <= set(as_dict(want).items())
        assert_sorted(got)


def test_one_prompts_branches_run_side_by_side(arc: SimpleNamespace) -> None:
    """One prompt alone in a batch: with rows to spare its pending branches run beside each other, so it needs
    a pass per level of its tree instead of a pass per node, runs the same nodes and finds the same; with one row
    it is the sequential search, pass for pass."""
    bound = 5
    want = alone(arc, arc.prompt, bound)
    assert want.forward_passes > 2 * bound, "p too high to test anything"
    wide = dfs_lockstep(arc.model, [arc.prompt], max_new_tokens=[bound], **lockstep_kwargs(arc))
    assert_same_search(wide.results[0], want)
    assert wide.forward_passes == wide.results[0].forward_passes <= bound  # prefill + one pass a level
    assert wide.nodes == wide.results[0].nodes == want.nodes == want.forward_passes - 1  # each node run once
    one_row = dfs_lockstep(arc.model, [arc.prompt], max_new_tokens=[bound],
                           **lockstep_kwargs(arc, batch_tokens=len(arc.prompt) + bound))
    assert_same_search(one_row.results[0], want)
    assert one_row.forward_passes == want.forward_passes and one_row.nodes == want.forward_passes - 1


@pytest.mark.parametrize("rows", [8, 11, 24])
def test_side_by_side_keeps_to_the_rows_its_token_budget_allows(arc: SimpleNamespace,
                                                                monkeypatch: pytest.MonkeyPatch, rows: int) -> None:
    """The budget allows ``rows`` rows of (widest prompt + largest answer room): no pass feeds more and the
    cache's buffers never hold more, while the candidates stay the sequential search's; with more rows than
    prompts the spare ones are used, and the search needs fewer passes."""
    prompts = arc_view_prompts(arc.tokenizer)
    bounds = [5] * len(prompts)
    want = [alone(arc, p, n) for p, n in zip(prompts, bounds, strict=True)]
    seen = recording_forward(arc.model, monkeypatch)
    capacity = max(len(p) for p in prompts) + max(bounds)
    got = dfs_lockstep(arc.model, prompts, max_new_tokens=bounds,
                       **lockstep_kwargs(arc, batch_tokens=rows * capacity + capacity - 1))
    for a, b in zip(got.results, want, strict=True):
        assert_same_search(a, b)
    assert len(seen) == got.forward_passes and got.nodes == sum(fed for fed, _ in seen[1:])  # seen[0]: the prefill
    assert max(fed for fed, _ in seen) <= rows and max(held for _, held in seen) <= rows
    if rows > len(prompts):
        assert max(fed for fed, _ in seen) > len(prompts)
        assert got.forward_passes < max(r.forward_passes for r in want)


@pytest.mark.parametrize("cap", [1, 3, 7])
def test_side_by_side_cap_keeps_the_first_candidates_in_depth_first_order(arc: SimpleNamespace, cap: int) -> None:
    """Under the candidate cap, branches running side by side find candidates out of depth-first order; each
    prompt still keeps the first ``cap`` in that order, the set the sequential search stops at."""
    prompts = arc_view_prompts(arc.tokenizer)
    want = [alone(arc, p, 5, min_probability=1e-3, max_candidates_per_view=cap) for p in prompts]
    uncapped = [alone(arc, p, 5, min_probability=1e-3) for p in prompts]
    assert all(len(r.candidates) > cap for r in uncapped), "p too high to test anything"
    got = dfs_lockstep(arc.model, prompts, max_new_tokens=[5] * len(prompts),
                       **lockstep_kwargs(arc, min_probability=1e-3, max_candidates_per_view=cap))
    for a, b in zip(got.results, want, strict=True):
        assert_same_search(a, b)
        assert len(a.candidates) == cap
    assert got.nodes > got.forward_passes * len(prompts), "no pass ran more nodes than prompts: nothing tested"


def test_side_by_side_out_of_memory_retries_with_half_the_rows(arc: SimpleNamespace,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU that fits 5 rows: the batch of 8 prompts and 40 rows fails, and is searched again in halves with
    half the rows, down to batches that fit; the candidates stay the sequential search's."""
    prompts = arc_view_prompts(arc.tokenizer)
    want = [alone(arc, p, 5) for p in prompts]
    seen = recording_forward(arc.model, monkeypatch, rows_that_fit=5)
    capacity = max(len(p) for p in prompts) + 5
    got = dfs_lockstep(arc.model, prompts, max_new_tokens=[5] * len(prompts),
                       **lockstep_kwargs(arc, batch_tokens=40 * capacity))
    for a, b in zip(got.results, want, strict=True):
        assert_same_search(a, b)
    assert any(held is None for _, held in seen), "nothing ran out of memory: nothing tested"
    assert max(fed for fed, held in seen if held is not None) <= 5
