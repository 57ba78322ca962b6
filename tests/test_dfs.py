"""Depth-first candidate search (arc_kit.solve.dfs) against references that cannot share its bugs.

- On a 4-token Llama, brute force: every completion of length <= 4, scored by one teacher-forced forward pass.
- On the tiny ARC model: the greedy decoder at p > 0.5, teacher-forced NLLs, and the same search recomputing every
  prefix from scratch instead of cropping the KV cache.
- The deadline and the candidate cap: what was found so far comes back, nothing raises.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from arc_kit.config.run import SolverSettings
from arc_kit.core.formats import ARC_KIT_FORMAT
from arc_kit.core.tasks import Pair
from arc_kit.solve import dfs as dfs_module
from arc_kit.solve.dfs import Candidate, DfsResult, answer_token_ids, dfs_candidates, dfs_lockstep

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """One torch thread, as ``load_model`` sets on CPU: on 2 shared cores a second OpenMP thread spin-waits on a
    busy core and a 1 ms forward pass can take 40 ms."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------------------------
# Helpers


def teacher_forced_nll(model: Any, prompt: Sequence[int], answer: Sequence[int]) -> float:
    """-sum log P(answer | prompt) from one full forward pass, no cache: the reference for every NLL."""
    ids = torch.tensor([[*prompt, *answer]], dtype=torch.long)
    with torch.inference_mode():
        logprobs = model(input_ids=ids, use_cache=False).logits[0].float().log_softmax(-1)
    rows = torch.arange(len(prompt) - 1, len(prompt) + len(answer) - 1)
    return -float(logprobs[rows, torch.tensor(list(answer))].double().sum())


def as_dict(result: DfsResult) -> dict[tuple[int, ...], float]:
    return {c.token_ids: c.nll for c in result.candidates}


def assert_sorted(result: DfsResult) -> None:
    keys = [(c.nll, c.token_ids) for c in result.candidates]
    assert keys == sorted(keys)
    assert len({c.token_ids for c in result.candidates}) == len(result.candidates)


# ------------------------------------------------------------------------------------------------------------
# A 4-token Llama and brute force

VOCAB = 4
PROMPT = (0, 1, 2, 0, 1)


def tiny_llama(seed: int = 0) -> Any:
    """A real transformers causal LM (so it takes ``past_key_values=DynamicCache``) over 4 tokens.

    initializer_range=0.5 rather than 0.02: a near-uniform model would give every sequence of a length the same
    NLL, and pruning would never be tested between them.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                         initializer_range=0.5, tie_word_embeddings=False, pad_token_id=None, bos_token_id=None,
                         eos_token_id=None)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def llama4() -> Any:
    return tiny_llama()


def brute_force(model: Any, prompt: Sequence[int], expand: Sequence[int], end: Sequence[int],
                max_new_tokens: int) -> dict[tuple[int, ...], float]:
    """Every completion (expand tokens then one end token, at most ``max_new_tokens``) with its NLL."""
    out = {}
    for length in range(max_new_tokens):
        for body in itertools.product(expand, repeat=length):
            for e in end:
                seq = (*body, e)
                out[seq] = teacher_forced_nll(model, prompt, seq)
    return out


def bounds_between(nlls: Sequence[float], ranks: Sequence[int]) -> list[float]:
    """Probabilities whose -ln falls halfway between the NLLs ranked k and k+1: no completion sits on the bound,
    so float32 rounding cannot decide membership."""
    ordered = sorted(nlls)
    return [math.exp(-(ordered[k] + ordered[k + 1]) / 2) for k in ranks if ordered[k + 1] - ordered[k] > 1e-4]


@pytest.mark.parametrize(("expand", "end"), [((0, 1, 2), (3,)), ((0, 1), (3,)), ((0,), (2, 3))],
                         ids=["three-plus-end", "token-2-never-expanded", "two-ends"])
def test_dfs_equals_brute_force_on_a_four_token_vocabulary(llama4: Any, expand: tuple[int, ...],
                                                            end: tuple[int, ...]) -> None:
    max_new = 4
    truth = brute_force(llama4, PROMPT, expand, end, max_new)
    probabilities = [*bounds_between(list(truth.values()), [0, 1, 3, len(truth) // 2, len(truth) - 2]), 1.0]
    probabilities.append(math.exp(-max(truth.values())) / 2)  # below everything: all of them
    for p in probabilities:
        result = dfs_candidates(llama4, PROMPT, min_probability=p, expand_ids=expand, end_ids=end, max_new_tokens=max_new, max_candidates_per_view=10_000, device="cpu", prefill_chunk_tokens=2048, kv_cache="inplace")
        expected = {seq: nll for seq, nll in truth.items() if nll <= -math.log(p)}
        got = as_dict(result)
        assert set(got) == set(expected), f"p={p}"
        for seq, nll in got.items():
            assert nll == pytest.approx(expected[seq], abs=1e-4)
        assert not result.timed_out
        assert_sorted(result)
    # The smallest p found all of them: the bound on length was the only limit.
    assert len(got) == len(truth)


def test_dfs_above_one_half_is_the_greedy_completion(llama4: Any) -> None:
    """Sharpen the model (the final norm's weight scales every logit) until a greedy path that ends is more than
    0.6 likely; DFS at 0.6 must return exactly it, and nothing at a p just above its probability."""
    import copy

    expand, end, max_new = (0, 1, 2), (3,), 4
    for prompt in itertools.product(range(VOCAB), repeat=3):
        path = []
        with torch.inference_mode():
            for _ in range(max_new):
                path.append(int(llama4(torch.tensor([[*prompt, *path]])).logits[0, -1].argmax()))
                if path[-1] in end:
                    break
        if path[-1] in end and all(t in expand for t in path[:-1]):
            break
    else:
        pytest.fail("no 3-token prompt whose greedy path ends within 4 tokens")
    sharp = copy.deepcopy(llama4)
    with torch.no_grad():
        sharp.model.norm.weight.mul_(8.0)  # argmax unchanged, so the greedy path is the same
    nll = teacher_forced_nll(sharp, prompt, path)
    assert math.exp(-nll) > 0.6, "sharpening did not make the greedy path likely enough for a real check"
    result = dfs_candidates(sharp, prompt, min_probability=0.6, expand_ids=expand, end_ids=end, max_new_tokens=max_new, max_candidates_per_view=32, device="cpu", prefill_chunk_tokens=2048, kv_cache="inplace")
    assert [c.token_ids for c in result.candidates] == [tuple(path)]
    assert result.candidates[0].nll == pytest.approx(nll, abs=1e-4)
    above = dfs_candidates(sharp, prompt, min_probability=min(1.0, math.exp(-nll) + 1e-3), expand_ids=expand, end_ids=end, max_new_tokens=max_new, max_candidates_per_view=32, device="cpu", prefill_chunk_tokens=2048, kv_cache="inplace")
    assert above.candidates == []
    # One step shorter than the path: it cannot end, so nothing (a completion without an end is no candidate).
    short = dfs_candidates(sharp, prompt, min_probability=0.6, expand_ids=expand, end_ids=end, max_new_tokens=len(path) - 1, max_candidates_per_view=32, device="cpu", prefill_chunk_tokens=2048, kv_cache="inplace")
    assert short.candidates == []


# ------------------------------------------------------------------------------------------------------------
# The tiny ARC model

TRAIN = (
    Pair(((1, 0), (0, 1)), ((0, 1), (1, 0))),
    Pair(((2, 2, 0), (0, 0, 0)), ((0, 0, 0), (2, 2, 0))),
)
TEST_INPUT = ((3, 0), (0, 3))


@pytest.fixture(scope="module")
def arc(tiny_model_dir: Any) -> SimpleNamespace:
    from arc_kit.models.loading import load_model

    loaded = load_model(tiny_model_dir, SolverSettings(device="cpu"))
    tokenizer = loaded.tokenizer
    prompt = tuple(tokenizer(ARC_KIT_FORMAT.render(tokenizer, TRAIN, TEST_INPUT).prompt, add_special_tokens=False)["input_ids"])
    expand, end = answer_token_ids(tokenizer, ARC_KIT_FORMAT)
    return SimpleNamespace(model=loaded.model, tokenizer=tokenizer, prompt=prompt, expand=expand, end=end)


def arc_dfs(arc: SimpleNamespace, p: float, max_new_tokens: int = 4, **kwargs: Any) -> DfsResult:
    return dfs_candidates(arc.model, arc.prompt, min_probability=p, expand_ids=arc.expand, end_ids=arc.end,
                          max_new_tokens=max_new_tokens, **{"max_candidates_per_view": 10_000, "device": "cpu",
                                                            "prefill_chunk_tokens": 2048, "kv_cache": "inplace",
                                                            **kwargs})


def test_answer_token_ids_are_digits_newline_and_end(arc_tokenizer: Any) -> None:
    expand, end = answer_token_ids(arc_tokenizer, ARC_KIT_FORMAT)
    assert arc_tokenizer.convert_ids_to_tokens(expand) == [*"0123456789", "\n"]
    assert "<|im_end|>" in arc_tokenizer.convert_ids_to_tokens(end)
    assert not set(expand) & set(end)


def test_arc_model_above_one_half_is_greedy_or_nothing(arc: SimpleNamespace) -> None:
    from arc_kit.solve.decoding import DecodeRequest, GreedyDecoder

    for max_new in (3, 8):
        gen = GreedyDecoder.for_config(arc.model, arc.tokenizer, "cpu", SolverSettings(batch_size=1)).decode([DecodeRequest(0, arc.prompt, max_new)])[0]
        result = arc_dfs(arc, 0.6, max_new)
        greedy_counts = (gen.finished and all(t in arc.expand for t in gen.token_ids[:-1])
                         and teacher_forced_nll(arc.model, arc.prompt, gen.token_ids) <= -math.log(0.6))
        assert [c.token_ids for c in result.candidates] == ([tuple(gen.token_ids)] if greedy_counts else [])


def test_arc_model_lower_p_only_adds_candidates(arc: SimpleNamespace) -> None:
    previous: dict[tuple[int, ...], float] = {}
    sizes = []
    for p in (0.05, 1e-2, 3e-3, 1e-3):
        found = as_dict(arc_dfs(arc, p))
        assert set(previous) <= set(found)
        for seq, nll in previous.items():
            assert found[seq] == nll  # same path, same arithmetic: bit for bit
        assert all(nll <= -math.log(p) + 1e-6 for nll in found.values())
        previous = found
        sizes.append(len(found))
    assert sizes[-1] > sizes[0] and sizes[-1] >= 5, f"p values too high to test anything: {sizes}"


def test_arc_model_nlls_equal_teacher_forcing(arc: SimpleNamespace) -> None:
    result = arc_dfs(arc, 1e-3)
    assert len(result.candidates) >= 5
    assert_sorted(result)
    for c in result.candidates:
        assert c.token_ids[-1] in arc.end and all(t in arc.expand for t in c.token_ids[:-1])
        assert len(c.token_ids) <= 4
        assert c.nll == pytest.approx(teacher_forced_nll(arc.model, arc.prompt, c.token_ids), abs=1e-4)


def test_arc_model_cache_cropping_equals_recomputing(arc: SimpleNamespace) -> None:
    cached = arc_dfs(arc, 1e-3)
    fresh = arc_dfs(arc, 1e-3, _recompute=True)
    assert [c.token_ids for c in cached.candidates] == [c.token_ids for c in fresh.candidates]
    for a, b in zip(cached.candidates, fresh.candidates, strict=True):
        assert a.nll == pytest.approx(b.nll, abs=1e-4)
    assert cached.forward_passes == fresh.forward_passes
    # A prompt prefilled in chunks of 7 tokens gives the same search.
    chunked = arc_dfs(arc, 1e-3, prefill_chunk_tokens=7)
    assert [c.token_ids for c in chunked.candidates] == [c.token_ids for c in cached.candidates]


# ------------------------------------------------------------------------------------------------------------
# The deadline and the cap


def test_a_deadline_in_the_past_returns_timed_out_and_nothing(arc: SimpleNamespace) -> None:
    result = arc_dfs(arc, 1e-3, stop_at=time.time() - 1)
    assert result == DfsResult([], True, 0)


class _Clock:
    """time.time() for the dfs module: 0 for the first ``calls`` readings, then far in the future."""

    def __init__(self, calls: int):
        self.left = calls

    def time(self) -> float:
        self.left -= 1
        return 0.0 if self.left >= 0 else 1e12


@pytest.mark.parametrize("passes", [1, 5, 40])
def test_a_deadline_after_n_passes_keeps_what_was_found(arc: SimpleNamespace, monkeypatch: pytest.MonkeyPatch,
                                                        passes: int) -> None:
    full = arc_dfs(arc, 1e-3)
    assert full.forward_passes > 40
    monkeypatch.setattr(dfs_module, "time", _Clock(passes))  # the deadline is read once before each pass
    stopped = arc_dfs(arc, 1e-3, stop_at=1.0)
    assert stopped.timed_out and stopped.forward_passes == passes
    assert set(as_dict(stopped).items()) <= set(as_dict(full).items())
    assert_sorted(stopped)


def test_the_candidate_cap_keeps_the_first_found(arc: SimpleNamespace) -> None:
    full = arc_dfs(arc, 1e-3)
    capped = arc_dfs(arc, 1e-3, max_candidates_per_view=3)
    assert len(capped.candidates) == 3 and not capped.timed_out
    assert capped.forward_passes < full.forward_passes
    assert set(as_dict(capped).items()) <= set(as_dict(full).items())


def test_nothing_to_search(arc: SimpleNamespace) -> None:
    assert arc_dfs(arc, 1e-3, max_new_tokens=0) == DfsResult([], False, 0)
    assert arc_dfs(arc, 1.0).candidates == []  # only a certain answer would do
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            arc_dfs(arc, bad)
    assert Candidate((1,), 0.0).probability == 1.0


# ------------------------------------------------------------------------------------------------------------
# Lock-step: several prompts as one batch, each row its own stack and its own depth in the cache


def assert_same_search(got: DfsResult, want: DfsResult) -> None:
    """The same candidates in the same order, NLLs within 1e-4, and the same number of passes needed."""
    assert [c.token_ids for c in got.candidates] == [c.token_ids for c in want.candidates]
    for a, b in zip(got.candidates, want.candidates, strict=True):
        assert a.nll == pytest.approx(b.nll, abs=1e-4)
    assert got.forward_passes == want.forward_passes and got.timed_out == want.timed_out


def arc_view_prompts(tokenizer: Any) -> list[tuple[int, ...]]:
    """Prompts of 8 views of one non-square task: two lengths (transposed views are longer), so both a batch
    without padding and a left-padded one occur."""
    from arc_kit.core.augment import views_for_task
    from arc_kit.core.tasks import Task
    from arc_kit.solve.prompts import task_prompts

    grid = ((1, 2, 0), (0, 3, 4))
    task = Task("lock", (Pair(grid, grid[::-1]), Pair(((5, 5), (0, 1)), ((0, 1), (5, 5)))),
                (Pair(((3, 0, 1), (2, 2, 2))),))
    prompts = [p.token_ids for p in task_prompts(task, tokenizer, ARC_KIT_FORMAT, views_for_task(task, 8, 0), 8192)]
    assert len({len(p) for p in prompts}) == 2
    return prompts


def search_both_ways(model: Any, prompts: Sequence[Sequence[int]], bounds: Sequence[int], *, batch_size: int,
                     **kwargs: Any) -> tuple[list[DfsResult], Any]:
    common = {"max_candidates_per_view": 10_000, "device": "cpu", "prefill_chunk_tokens": 2048, **kwargs}
    sequential = [dfs_candidates(model, p, max_new_tokens=n, kv_cache="inplace", **common)
                  for p, n in zip(prompts, bounds, strict=True)]
    together = dfs_lockstep(model, prompts, max_new_tokens=bounds, batch_size=batch_size, batch_tokens=1 << 20,
                            kv_cache="inplace", **common)
    return sequential, together


@pytest.mark.parametrize("keep_greedy", [False, True])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_lockstep_equals_the_sequential_search_on_the_arc_model(arc: SimpleNamespace, keep_greedy: bool,
                                                                 batch_size: int) -> None:
    prompts = arc_view_prompts(arc.tokenizer)
    bounds = [3 + i % 3 for i in range(len(prompts))]  # rows hit their bounds at different depths
    sequential, together = search_both_ways(arc.model, prompts, bounds, batch_size=batch_size, min_probability=2e-3,
                                            expand_ids=arc.expand, end_ids=arc.end, keep_greedy=keep_greedy)
    assert together.kv_cache == "inplace" and together.batches == -(-len(prompts) // batch_size)
    for got, want in zip(together.results, sequential, strict=True):
        assert_same_search(got, want)
    assert sum(len(r.candidates) for r in sequential) >= 16, "p too high to test anything"
    if batch_size == 8:  # one batch: a pass per step of the row that needs the most, not the sum over rows
        assert together.forward_passes == max(r.forward_passes for r in sequential)
        assert together.forward_passes * 3 <= sum(r.forward_passes for r in sequential)


def test_lockstep_equals_the_sequential_search_on_a_24m_llama() -> None:
    """A Llama-shaped model of 24M parameters (8 layers, 4:1 grouped KV heads, as ``scripts/bench_inference.py``
    builds it), sharpened so that completions differ in likelihood, on random prompts of four lengths."""
    import random

    from arc_kit.models.tiny import TinyModelShape, build_arc_tokenizer, build_tiny_model

    tokenizer = build_arc_tokenizer()
    model = build_tiny_model(tokenizer, TinyModelShape(hidden_size=512, intermediate_size=1536, num_hidden_layers=8,
                                                       num_attention_heads=8, num_key_value_heads=2,
                                                       seed=0)).eval()
    with torch.no_grad():
        model.model.norm.weight.mul_(3.0)
    expand, end = answer_token_ids(tokenizer, ARC_KIT_FORMAT)
    rng = random.Random(3)
    prompts = [tuple(rng.randrange(5, len(tokenizer)) for _ in range(n)) for n in (48, 48, 61, 61, 61, 75)]
    sequential, together = search_both_ways(model, prompts, [5] * len(prompts), batch_size=8, min_probability=3e-3,
                                            expand_ids=expand, end_ids=end)
    for got, want in zip(together.results, sequential, strict=True):
        assert_same_search(got, want)
    assert sum(len(r.candidates) for r in sequential) >= 8, "p too high to test anything"
    assert together.forward_passes == max(r.forward_passes for r in sequential)


def test_keep_greedy_adds_the_greedy_completion_whatever_its_probability(arc: SimpleNamespace) -> None:
    """At p = 1 nothing is likely enough; with ``keep_greedy`` the search still returns the completion that takes
    the most likely allowed token at every step (computed here from scratch), and at a low p it adds it to the
    plain search's candidates."""
    path: list[int] = []
    allowed = torch.tensor(sorted({*arc.expand, *arc.end}))
    with torch.inference_mode():
        while not path or (path[-1] not in arc.end and len(path) < 6):
            logits = arc.model(input_ids=torch.tensor([[*arc.prompt, *path]])).logits[0, -1]
            path.append(int(allowed[logits[allowed].argmax()]))
    kept = arc_dfs(arc, 1.0, 6, keep_greedy=True)
    if path[-1] in arc.end:
        assert [c.token_ids for c in kept.candidates] == [tuple(path)]
        assert kept.candidates[0].nll == pytest.approx(teacher_forced_nll(arc.model, arc.prompt, path), abs=1e-4)
    else:
        assert kept.candidates == []
    assert arc_dfs(arc, 1.0, 6).candidates == []
    plain, with_greedy = as_dict(arc_dfs(arc, 2e-3, 6)), as_dict(arc_dfs(arc, 2e-3, 6, keep_greedy=True))
    assert set(plain.items()) <= set(with_greedy.items()) and len(with_greedy) - len(plain) <= 1


@pytest.mark.parametrize("passes", [1, 4, 12])
def test_lockstep_stops_at_the_deadline_with_what_it_found(arc: SimpleNamespace, monkeypatch: pytest.MonkeyPatch,
                                                            passes: int) -> None:
    prompts = arc_view_prompts(arc.tokenizer)
    kwargs = {"min_probability": 2e-3, "expand_ids": arc.expand, "end_ids": arc.end, "max_candidates_per_view": 10_000,
              "device": "cpu", "prefill_chunk_tokens": 2048, "batch_size": 8, "batch_tokens": 1 << 20,
              "kv_cache": "inplace"}
    full = dfs_lockstep(arc.model, prompts, max_new_tokens=[5] * 8, **kwargs)
    assert full.forward_passes > 12
    monkeypatch.setattr(dfs_module, "time", _Clock(passes))  # the deadline is read once before each pass
    stopped = dfs_lockstep(arc.model, prompts, max_new_tokens=[5] * 8, stop_at=1.0, **kwargs)
    assert stopped.forward_passes == passes
    for got, want in zip(stopped.results, full.results, strict=True):
        assert got.timed_out and set(as_dict(got).items()) <= set(as_dict(want).items())
        assert_sorted(got)


def test_lockstep_caps_each_row_and_falls_back_to_one_at_a_time(arc: SimpleNamespace) -> None:
    prompts = arc_view_prompts(arc.tokenizer)[:4]
    kwargs = {"min_probability": 2e-3, "expand_ids": arc.expand, "end_ids": arc.end, "device": "cpu",
              "prefill_chunk_tokens": 2048, "batch_size": 8, "batch_tokens": 1 << 20}
    capped = dfs_lockstep(arc.model, prompts, max_new_tokens=[5] * 4, max_candidates_per_view=2, kv_cache="inplace",
                          **kwargs)
    alone = [dfs_candidates(arc.model, p, max_new_tokens=5, max_candidates_per_view=2, kv_cache="inplace",
                            **{k: v for k, v in kwargs.items() if not k.startswith("batch")}) for p in prompts]
    for got, want in zip(capped.results, alone, strict=True):
        assert len(got.candidates) == 2
        assert_same_search(got, want)
    dynamic = dfs_lockstep(arc.model, prompts, max_new_tokens=[5] * 4, max_candidates_per_view=2, kv_cache="dynamic",
                           **kwargs)
    assert dynamic.kv_cache == "dynamic"  # DynamicCache cannot crop one row: each prompt alone, same result
    for got, want in zip(dynamic.results, alone, strict=True):
        assert_same_search(got, want)
    assert dynamic.forward_passes == sum(r.forward_passes for r in alone)
