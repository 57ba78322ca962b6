"""Teacher-forced re-scoring: batching changes nothing, order changes nothing, and the scored tokens are exactly
the tokens training and decoding see (prompt ids + answer ids == the tokenized full text)."""

from __future__ import annotations

import random

import pytest

from arc_kit.core.augment import View
from arc_kit.core.formats import ARC_KIT_FORMAT
from arc_kit.core.tasks import Pair, Task
from arc_kit.solve.rescoring import ScoringView, answer_ids, answer_nlls, candidate_nlls, scoring_views

TOL = 1e-4

TASK = Task(
    "scoring-demo",
    (
        Pair(((1, 0, 0), (0, 2, 0)), ((0, 0, 1), (0, 2, 0))),
        Pair(((3, 3), (0, 4)), ((3, 3), (4, 0))),
        Pair(((5, 0, 6, 0),), ((0, 6, 0, 5),)),
    ),
    (Pair(((7, 0), (0, 8), (9, 9))), Pair(((1, 2, 3),))),
)
GRIDS = [((0, 7), (8, 0), (9, 9)), ((7, 0), (0, 8), (9, 9)), ((1,),), ((0, 7, 1), (8, 0, 1))]


@pytest.fixture(scope="module")
def model(arc_tokenizer):
    from arc_kit.models.tiny import build_tiny_model

    return build_tiny_model(arc_tokenizer).eval()


def reference_nll(model, prompt, answer) -> float:
    """One item alone, no padding, every position's logits, float64 log-softmax: the plain definition."""
    import torch

    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([[*prompt, *answer]])).logits[0].double()
    logp = logits.log_softmax(-1)
    n = len(prompt)
    return -sum(float(logp[n - 1 + k, t]) for k, t in enumerate(answer))


def random_items(seed: int, count: int, vocab: int) -> list[tuple[list[int], list[int]]]:
    rng = random.Random(seed)
    return [([rng.randrange(vocab) for _ in range(rng.randint(1, 40))],
             [rng.randrange(vocab) for _ in range(rng.randint(1, 12))]) for _ in range(count)]


def test_batched_nlls_equal_one_at_a_time(model, arc_tokenizer):
    items = random_items(0, 13, len(arc_tokenizer))
    expected = [reference_nll(model, p, a) for p, a in items]
    for budget in (1, 60, 200, 10_000):  # 1: every item alone; 10k: all in one batch
        got = answer_nlls(model, items, score_token_budget=budget, device="cpu")
        assert got == pytest.approx(expected, abs=TOL)


def test_nlls_do_not_depend_on_item_order(model, arc_tokenizer):
    items = random_items(1, 11, len(arc_tokenizer))
    base = answer_nlls(model, items, score_token_budget=150, device="cpu")
    perm = list(range(len(items)))
    random.Random(2).shuffle(perm)
    shuffled = answer_nlls(model, [items[i] for i in perm], score_token_budget=150, device="cpu")
    assert [shuffled[perm.index(i)] for i in range(len(items))] == pytest.approx(base, abs=TOL)


def test_a_model_without_logits_to_keep_gives_the_same_numbers(model, arc_tokenizer):
    class NoKeep:
        """A forward without ``logits_to_keep``: every position's logits come back and are sliced after."""

        def forward(self, input_ids, attention_mask, position_ids, use_cache):
            return model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=use_cache)

        __call__ = forward

    items = random_items(3, 7, len(arc_tokenizer))
    assert answer_nlls(NoKeep(), items, score_token_budget=100, device="cpu") == pytest.approx(answer_nlls(model, items, score_token_budget=16384, device="cpu"), abs=TOL)


def test_empty_items_and_bad_arguments(model):
    assert answer_nlls(model, [], score_token_budget=16384, device="cpu") == []
    with pytest.raises(ValueError, match="at least one token"):
        answer_nlls(model, [([1, 2], [])], score_token_budget=16384, device="cpu")
    with pytest.raises(ValueError, match="token_budget"):
        answer_nlls(model, [([1], [2])], score_token_budget=0, device="cpu")


@pytest.mark.parametrize("tokenizer_name", ["arc_tokenizer", "qwen_tokenizer"])
def test_prompt_plus_answer_ids_equal_the_full_tokenization(tokenizer_name, request):
    tokenizer = request.getfixturevalue(tokenizer_name)
    views = scoring_views(TASK, 0, tokenizer, count=4, seed=7, max_length=4096, colour_views=True, prompt_format=ARC_KIT_FORMAT)
    for view in views:
        for grid in GRIDS:
            ids = answer_ids(tokenizer, ARC_KIT_FORMAT, view, grid, check=True)
            viewed = View.from_key(view.view_key)
            rendered = ARC_KIT_FORMAT.render(tokenizer, view.train, view.test_input, viewed.apply_grid(grid))
            full = tokenizer(rendered.text, add_special_tokens=False)["input_ids"]
            assert list(view.prompt_ids) + list(ids) == full[: len(view.prompt_ids) + len(ids)]
            end = tokenizer.convert_tokens_to_ids("<|im_end|>")
            assert ids[-1] == end  # scored up to and including the end token, as the decoders generate


def test_scoring_views_are_seeded_by_task_and_fit_the_context(arc_tokenizer):
    a = scoring_views(TASK, 1, arc_tokenizer, count=5, seed=3, max_length=4096, colour_views=True, prompt_format=ARC_KIT_FORMAT)
    assert a == scoring_views(TASK, 1, arc_tokenizer, count=5, seed=3, max_length=4096, colour_views=True, prompt_format=ARC_KIT_FORMAT)
    assert len({v.view_key for v in a}) == 5 and View.from_key(a[0].view_key).is_identity
    other = Task("another-id", TASK.train, TASK.test)
    assert [v.view_key for v in scoring_views(other, 1, arc_tokenizer, 5, 3, 4096, colour_views=True, prompt_format=ARC_KIT_FORMAT)] != [v.view_key for v in a]
    for v in a:  # the prompt is the viewed task's test input, rendered from the pairs it keeps
        view = View.from_key(v.view_key)
        assert v.test_input == view.apply_grid(TASK.test[1].input)
        text = ARC_KIT_FORMAT.render(arc_tokenizer, v.train, v.test_input).prompt
        assert list(v.prompt_ids) == arc_tokenizer(text, add_special_tokens=False)["input_ids"]
    tight = scoring_views(TASK, 1, arc_tokenizer, count=2, seed=3, max_length=60, colour_views=True, prompt_format=ARC_KIT_FORMAT)
    assert all(v.pairs_dropped > 0 and len(v.train) >= 1 for v in tight)
    with pytest.raises(IndexError):
        scoring_views(TASK, 2, arc_tokenizer, 2, 0, 4096, colour_views=True, prompt_format=ARC_KIT_FORMAT)


def test_candidate_nlls_match_answer_nlls(model, arc_tokenizer):
    views = scoring_views(TASK, 0, arc_tokenizer, count=3, seed=1, max_length=4096, colour_views=True, prompt_format=ARC_KIT_FORMAT)
    got = candidate_nlls(model, arc_tokenizer, views, GRIDS, prompt_format=ARC_KIT_FORMAT, score_token_budget=16384, device="cpu")
    assert len(got) == len(GRIDS) and all(len(row) == len(views) for row in got)
    for g, grid in enumerate(GRIDS):
        for v, view in enumerate(views):
            expected = reference_nll(model, view.prompt_ids, answer_ids(arc_tokenizer, ARC_KIT_FORMAT, view, grid))
            assert got[g][v] == pytest.approx(expected, abs=TOL)


def test_candidate_nlls_do_not_depend_on_grid_or_view_order(model, arc_tokenizer):
    views = scoring_views(TASK, 0, arc_tokenizer, count=4, seed=5, max_length=4096, colour_views=True, prompt_format=ARC_KIT_FORMAT)
    base = candidate_nlls(model, arc_tokenizer, views, GRIDS, prompt_format=ARC_KIT_FORMAT, score_token_budget=400, device="cpu")
    rng = random.Random(0)
    for _ in range(3):
        gp, vp = list(range(len(GRIDS))), list(range(len(views)))
        rng.shuffle(gp)
        rng.shuffle(vp)
        got = candidate_nlls(model, arc_tokenizer, [views[i] for i in vp], [GRIDS[i] for i in gp], prompt_format=ARC_KIT_FORMAT, score_token_budget=rng.choice([100, 400, 5000]), device="cpu")
        for gi, g in enumerate(gp):
            for vi, v in enumerate(vp):
                assert got[gi][vi] == pytest.approx(base[g][v], abs=TOL)


def test_a_prompt_from_other_pairs_is_refused(arc_tokenizer):
    view = scoring_views(TASK, 0, arc_tokenizer, count=1, seed=0, max_length=4096, colour_views=True, prompt_format=ARC_KIT_FORMAT)[0]
    wrong = ScoringView(view.view_key, view.prompt_ids[1:], view.train, view.test_input)
    with pytest.raises(ValueError, match="differ"):
        answer_ids(arc_tokenizer, ARC_KIT_FORMAT, wrong, GRIDS[0], check=True)


def test_only_the_answer_span_logits_are_kept(model):
    """Rows of 30+3 and 28+5 tokens: the kept block starts at the shorter prompt's last token (K = 33 - 27)."""
    shapes = []

    class Spy:
        def forward(self, input_ids, attention_mask, position_ids, use_cache, logits_to_keep):
            out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                        use_cache=use_cache, logits_to_keep=logits_to_keep)
            shapes.append((tuple(input_ids.shape), tuple(out.logits.shape[:2])))
            return out

        __call__ = forward

    items = [([5] * 30, [6, 7, 8]), ([5] * 28, [6, 7, 8, 9, 4])]
    got = answer_nlls(Spy(), items, score_token_budget=16384, device="cpu")
    assert shapes == [((2, 33), (2, 6))]
    assert got == pytest.approx([reference_nll(model, p, a) for p, a in items], abs=TOL)


# -- each prompt prefilled once, every candidate teacher-forced from a copy of its cache


def random_groups(seed: int, vocab: int, lengths: list[int], answers: int) -> tuple[list[list[int]], list[list[list[int]]]]:
    rng = random.Random(seed)
    prompts = [[rng.randrange(5, vocab) for _ in range(n)] for n in lengths]
    groups = [[[rng.randrange(5, vocab) for _ in range(rng.randint(1, 14))] for _ in range(answers)] for _ in prompts]
    return prompts, groups


@pytest.mark.parametrize("shape", ["tiny", "24m"])
def test_prefix_nlls_equal_each_item_alone(arc_tokenizer, shape):
    """Prompts of three lengths (equal ones share a batch unpadded, the others are left-padded), answers of 1-14
    tokens; at every budget (1: a prompt and an answer at a time) the numbers are each item's alone."""
    from arc_kit.models.tiny import TinyModelShape, build_tiny_model
    from arc_kit.solve.rescoring import prefix_nlls

    config = None if shape == "tiny" else TinyModelShape(
        hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=2,
        seed=0)
    model = build_tiny_model(arc_tokenizer, config).eval()
    prompts, groups = random_groups(4, len(arc_tokenizer), [40, 40, 52, 61], 5)
    expected = [[reference_nll(model, p, a) for a in group] for p, group in zip(prompts, groups, strict=True)]
    for budget in (1, 150, 1 << 20):
        got = prefix_nlls(model, prompts, groups, score_token_budget=budget, device="cpu")
        for row, want in zip(got, expected, strict=True):
            assert row == pytest.approx(want, abs=TOL)


def test_the_shared_prefix_runs_each_prompt_once(model, arc_tokenizer):
    tokens: list[int] = []
    handle = model.register_forward_pre_hook(lambda _m, _a, kw: tokens.append(kw["input_ids"].numel()),
                                             with_kwargs=True)
    views = scoring_views(TASK, 0, arc_tokenizer, count=4, seed=1, max_length=4096, colour_views=True, prompt_format=ARC_KIT_FORMAT)
    try:
        shared = candidate_nlls(model, arc_tokenizer, views, GRIDS, score_token_budget=16384, device="cpu", prompt_format=ARC_KIT_FORMAT)
        shared_tokens, tokens[:] = sum(tokens), []
        plain = candidate_nlls(model, arc_tokenizer, views, GRIDS, score_token_budget=16384, device="cpu",
                               shared_prefix=False, prompt_format=ARC_KIT_FORMAT)
    finally:
        handle.remove()
    for a, b in zip(shared, plain, strict=True):
        assert a == pytest.approx(b, abs=TOL)
    prompt_tokens = sum(len(v.prompt_ids) for v in views)
    assert shared_tokens < prompt_tokens + len(GRIDS) * len(views) * 12 < sum(tokens)


def test_a_forward_without_a_cache_is_scored_whole(model, arc_tokenizer, caplog):
    class NoCache:
        """A forward that takes no cache keyword at all: the prompt cannot be shared, every item runs whole."""

        config = model.config

        def forward(self, input_ids, attention_mask, position_ids, use_cache, logits_to_keep=0):
            return model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=use_cache, logits_to_keep=logits_to_keep)

        __call__ = forward

    views = scoring_views(TASK, 0, arc_tokenizer, count=2, seed=1, max_length=4096, colour_views=True, prompt_format=ARC_KIT_FORMAT)
    with caplog.at_level("WARNING"):
        got = candidate_nlls(NoCache(), arc_tokenizer, views, GRIDS, score_token_budget=16384, device="cpu",
                             prompt_format=ARC_KIT_FORMAT)
    assert "without a shared prefix" in caplog.text
    want = candidate_nlls(model, arc_tokenizer, views, GRIDS, score_token_budget=16384, device="cpu", prompt_format=ARC_KIT_FORMAT)
    for a, b in zip(got, want, strict=True):
        assert a == pytest.approx(b, abs=TOL)
