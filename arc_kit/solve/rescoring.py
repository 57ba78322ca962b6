"""Re-scoring candidate answers by teacher forcing: the NLL of each grid under several views of its task.

Why: a candidate's generation NLL comes from the one view that produced it, and a wrong grid can be likely under
one view by accident. The ARChitects and NVARC score every candidate of a test input under the *same* set of
augmented views (each view transforms the task and the candidate alike) and combine the NLLs
(``arc_kit.solve.selection``); the right answer is consistently likely, a fluke is not. Background:
``docs/solver.md``.

An answer is scored exactly as training renders it: the completion of the model's prompt format
(``arc_kit.core.formats``: the grid text plus the end-of-turn tokens), tokenized without special tokens, after the
prompt's token ids, up to and including the first end token.

torch is imported inside functions: the runner imports solver modules in worker processes only after it has set
``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from arc_kit.core.augment import View, views_for_task
from arc_kit.core.formats import PromptFormat, encode_text, fit_for_tokenizer
from arc_kit.core.tasks import Grid, Pair, Task
from arc_kit.core.text import TokenizerError

log = logging.getLogger(__name__)


def answer_nlls(
    model: Any,
    items: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    score_token_budget: int,
    device: str,
) -> list[float]:
    """``-sum log p(answer | prompt)`` for each ``(prompt ids, answer ids)`` item, in the order given.

    The answer ids include the end token(s); the log-softmax runs over the model's whole output vocabulary, so the
    numbers are true log-probabilities, comparable across views and with the depth-first search's NLLs. The model
    should be in eval mode (dropout would make scores random).

    Batching: items are sorted by total length and packed greedily so that rows x longest row <=
    ``score_token_budget``
    (an item longer than the budget runs alone). Sorting keeps padding small; right padding with an attention mask
    and explicit position ids (0..n-1 for every row) makes each row's numbers those of the row alone, so results
    do not depend on the order of items or on the budget (up to float rounding of batched kernels).

    Memory: only the answer span's logits are materialised. ``logits_to_keep`` (where the forward accepts it)
    keeps the last K positions, K = longest row - shortest prompt + 1 in the batch, and each row's own span is
    upcast to float32 one row at a time. Arithmetic behind the default budget, Qwen3-4B on one 24 GB L4 (about
    22 GiB usable after the CUDA context):

    - weights, bf16: 4.0 B parameters x 2 B = ~8.0 GB;
    - no KV cache (``use_cache=False``): caching would add 36 layers x 2 x 8 KV heads x 128 x 2 B = 147 KB per
      token, 2.4 GB at 16k tokens, for nothing;
    - activations under ``inference_mode`` live one layer at a time: residual 2560 x 2 B, q/k/v (4096 + 2 x 1024)
      x 2 B, MLP gate/up/act 3 x 9728 x 2 B, about 80-100 KB per token -> 1.3-1.6 GB at 16,384 tokens; SDPA never
      builds the L x L scores, and the 4-D mask costs rows x L x L bytes, at most 16384^2 = 0.27 GB;
    - logits: 151,936 vocab x 2 B (bf16) per kept position; in the worst case every position of the batch is
      kept, 16,384 x 151,936 x 2 B = 5.0 GB (typically answers are 10-30% of a row: 0.5-1.5 GB). Upcasting that
      block to float32 would double it to 10 GB, which is why the float32 copy is one row's answer span only:
      at most ~935 positions x 151,936 x 4 B = 0.57 GB, twice with the log-softmax temporary.

    Worst case ~8 + 1.6 + 0.3 + 5.0 + 1.1 = ~16 GB: fits with room for allocator fragmentation; 32,768 tokens
    would need ~25 GB and does not. On an 80 GB H100 a budget of 65,536 is safe.
    """
    if score_token_budget < 1:
        raise ValueError(f"score_token_budget must be positive, got {score_token_budget}")
    for i, (prompt, answer) in enumerate(items):
        if len(prompt) < 1 or len(answer) < 1:
            raise ValueError(f"item {i}: the prompt and the answer need at least one token each")
    import torch

    lengths = [len(p) + len(a) for p, a in items]
    order = sorted(range(len(items)), key=lambda i: (lengths[i], i))
    out: list[float] = [0.0] * len(items)
    batch: list[int] = []
    batches: list[list[int]] = []
    for i in order:  # ascending length: the item being added is the batch's widest
        if batch and (len(batch) + 1) * lengths[i] > score_token_budget:
            batches.append(batch)
            batch = []
        batch.append(i)
    if batch:
        batches.append(batch)
    keeps_logits = _accepts_logits_to_keep(model)
    with torch.inference_mode():
        for rows in batches:
            for i, nll in zip(rows, _batch_nlls(model, [items[i] for i in rows], device, keeps_logits), strict=True):
                out[i] = nll
    return out


def _accepts_logits_to_keep(model: Any) -> bool:
    """Whether the forward takes ``logits_to_keep`` (transformers >= 4.50 models, Unsloth's patched forwards)."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return "logits_to_keep" in params


def _batch_nlls(
    model: Any, batch: Sequence[tuple[Sequence[int], Sequence[int]]], device: str, keeps_logits: bool
) -> list[float]:
    """One right-padded forward pass; each row's NLL summed over its own answer span in float32."""
    import torch

    width = max(len(p) + len(a) for p, a in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (prompt, answer) in enumerate(batch):
        n = len(prompt) + len(answer)
        ids[row, :n] = torch.tensor([*prompt, *answer], dtype=torch.long)
        mask[row, :n] = 1
    positions = torch.arange(width, dtype=torch.long).expand(len(batch), width)
    # Position t's logits predict token t + 1: a row's answer is predicted from len(prompt) - 1 onwards.
    first = min(len(p) for p, _ in batch) - 1
    keep = width - first
    kwargs: dict[str, Any] = {"logits_to_keep": keep} if keeps_logits else {}
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                   use_cache=False, **kwargs).logits
    start = width - logits.shape[1]  # the column of logits[:, 0]; 0 when the model kept every position
    if start > first:
        raise RuntimeError(f"the model returned logits for {logits.shape[1]} positions, {keep} were asked for")
    nlls = []
    for row, (prompt, answer) in enumerate(batch):
        lo = len(prompt) - 1 - start
        span = logits[row, lo : lo + len(answer)].float()
        target = torch.tensor(answer, dtype=torch.long, device=span.device)
        picked = span.gather(-1, target[:, None])[:, 0]
        nlls.append(float((torch.logsumexp(span, dim=-1) - picked).sum()))
        del span
    return nlls


# ---------------------------------------------------------------------------------------------------------------
# Scoring views of one test input


@dataclass(frozen=True)
class ScoringView:
    """A view of the task and its prompt token ids for one test input.

    ``train`` and ``test_input`` are the viewed (and fitted) pairs the prompt was rendered from: an answer's text
    is the completion of rendering them with that answer, exactly as in training.
    """

    view_key: str
    prompt_ids: tuple[int, ...]
    train: tuple[Pair, ...] = ()
    test_input: Grid = ()
    pairs_dropped: int = 0


def scoring_views(task: Task, test_index: int, tokenizer: Any, count: int, seed: int,
                  max_length: int, *, colour_views: bool, prompt_format: PromptFormat) -> list[ScoringView]:
    """``count`` views of ``task`` for test input ``test_index``, each fitted, rendered (in ``prompt_format``) and
    tokenized once.

    The views come from ``views_for_task(task, count, seed)``, which seeds with ``f"{seed}:{task_id}"`` (never
    ``hash()``), so every process scores a task under the same views. Train pairs are dropped to leave the
    answer room of an unknown answer (``fit_for_tokenizer`` without ``answer``): all candidates of a test input
    then share one prompt per view, whatever their size.
    """
    if not 0 <= test_index < len(task.test):
        raise IndexError(f"task {task.task_id} has {len(task.test)} test inputs, not index {test_index}")
    views = []
    for view in views_for_task(task, count, seed, permute_colours=colour_views):
        viewed = view.apply_task(task)
        fitted = fit_for_tokenizer(tokenizer, prompt_format, viewed, test_index, max_length)
        test_input = viewed.test[test_index].input
        views.append(ScoringView(view.key, fitted.prompt_ids, fitted.train, test_input, fitted.dropped))
    return views


def answer_ids(tokenizer: Any, prompt_format: PromptFormat, view: ScoringView, grid: Grid, *,
               check: bool = False) -> tuple[int, ...]:
    """Token ids of ``grid`` (in the task's own frame) as the answer under ``view`` in ``prompt_format``, up to and
    including the first end token: what the decoders generate and score (a template's newline after it is not
    part of an answer).

    With ``check`` the full rendered text is tokenized too and must start with prompt ids + answer ids; otherwise
    tokens merge across the boundary and the NLL would be of a text the model never sees.
    """
    answer = View.from_key(view.view_key).apply_grid(grid)
    rendered = prompt_format.render(tokenizer, view.train, view.test_input, answer)
    ids = tuple(encode_text(tokenizer, rendered.completion))
    ends = set(prompt_format.end_ids(tokenizer))
    first_end = next((i for i, t in enumerate(ids) if t in ends), len(ids) - 1)
    ids = ids[: first_end + 1]  # truncated after the first end token
    if check:
        full = tuple(encode_text(tokenizer, rendered.text))
        if full[: len(view.prompt_ids) + len(ids)] != view.prompt_ids + ids:
            raise TokenizerError(
                f"view {view.view_key}: prompt ids + answer ids differ from the tokenized full text (tokens merge "
                "across the prompt/answer boundary, or the prompt was rendered from other pairs)"
            )
    return ids


def candidate_nlls(
    model: Any,
    tokenizer: Any,
    views: list[ScoringView],
    grids: Sequence[Grid],
    *,
    prompt_format: PromptFormat,
    score_token_budget: int,
    device: str,
    shared_prefix: bool = True,
) -> list[list[float]]:
    """For each grid, its NLL under each view (``result[g][v]``), grids given in the task's own frame.

    Every grid is scored under the same views, so the numbers compare across candidates, and they do not depend
    on the order of grids or views. The first grid of each view is checked against the tokenization of the full
    text (one extra tokenization per view).

    ``shared_prefix`` (the default): each view's prompt is run once and every candidate is teacher-forced from a
    copy of its KV cache (``prefix_nlls``); off, or when the model cannot be given a cache it fills, every
    (grid, view) item runs whole through ``answer_nlls``. Both give the same numbers up to float rounding.
    """
    from arc_kit.solve.kv_cache import CacheRejected

    answers = [[answer_ids(tokenizer, prompt_format, view, grid, check=g == 0) for view in views] for g, grid in enumerate(grids)]
    if shared_prefix and grids and views:
        try:
            per_view = prefix_nlls(model, [v.prompt_ids for v in views],
                                   [[answers[g][v] for g in range(len(grids))] for v in range(len(views))],
                                   score_token_budget=score_token_budget, device=device)
            return [[per_view[v][g] for v in range(len(views))] for g in range(len(grids))]
        except CacheRejected as e:
            log.warning("re-scoring without a shared prefix: %s", e)
    items = [(view.prompt_ids, answers[g][v]) for g in range(len(grids)) for v, view in enumerate(views)]
    flat = answer_nlls(model, items, score_token_budget=score_token_budget, device=device)
    n = len(views)
    return [flat[g * n : (g + 1) * n] for g in range(len(grids))]


def prefix_nlls(
    model: Any,
    prompts: Sequence[Sequence[int]],
    answers: Sequence[Sequence[Sequence[int]]],
    *,
    score_token_budget: int,
    device: str,
) -> list[list[float]]:
    """``-sum log p(answer | prompt)`` for every answer of every prompt (``result[p][a]``), each prompt run once.

    Why: a test input's candidates share their prompt under a view; teacher-forcing each candidate with its whole
    prompt computes that prompt once per candidate, and prompts are 10-30x longer than answers. The ARChitects
    (2025) reuse the prompt's cache instead: 5.8x faster scoring, which paid for 4x the scoring views.

    How: prompts are prefilled together (left-padded when their lengths differ, packed as the decoders pack
    them, rows x (widest prompt + longest answer) <= ``score_token_budget``) into an in-place KV cache; the last
    prompt position's logits give every answer's first token. Then the answers run in batches of the same budget:
    each batch's cache holds a copy of its rows' prompt KV (``copy_rows``: one copy per row, cheap next to the
    compute it saves), and the answers, right-padded (causal attention keeps the padding out of every real
    position), are teacher-forced in one forward pass. The log-softmax runs over the whole vocabulary in float32,
    one row's span at a time, as in ``answer_nlls``; the numbers match it up to float rounding. Raises
    ``CacheRejected`` (``arc_kit.solve.kv_cache``) for a model that cannot be given such a cache.
    """
    if score_token_budget < 1:
        raise ValueError(f"score_token_budget must be positive, got {score_token_budget}")
    if len(answers) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but answers for {len(answers)}")
    for p, (prompt, group) in enumerate(zip(prompts, answers, strict=True)):
        if len(prompt) < 1 or any(len(a) < 1 for a in group):
            raise ValueError(f"prompt {p}: the prompt and every answer need at least one token")
    import torch

    from arc_kit.solve.decoding import length_batches

    out: list[list[float]] = [[0.0] * len(group) for group in answers]
    longest = [max((len(a) for a in group), default=1) for group in answers]
    groups = length_batches([(len(p), n) for p, n in zip(prompts, longest, strict=True)],
                            batch_size=len(prompts), batch_tokens=score_token_budget)
    with torch.inference_mode():
        for group in groups:
            _score_prompt_group(model, [prompts[i] for i in group], [answers[i] for i in group],
                                [out[i] for i in group], score_token_budget, device)
    return out


def _score_prompt_group(model: Any, prompts: list[Sequence[int]], answers: list[Sequence[Sequence[int]]],
                        out: list[list[float]], budget: int, device: str) -> None:
    """One prefill of ``prompts``, then their answers in batches; NLLs written into ``out[p][a]``."""

    from arc_kit.solve.kv_cache import cache_keyword, prefill_rowwise

    width = max(len(p) for p in prompts)
    padded = any(len(p) != width for p in prompts)
    prefix, logits = prefill_rowwise(model, prompts, capacity=width, device=device, chunk=width, stop=lambda: False)
    keyword = cache_keyword(model)
    first = logits[:, -1].float().log_softmax(-1)  # [prompts, vocab]: every answer's first token
    items = [(p, a) for p, group in enumerate(answers) for a in range(len(group))]
    items.sort(key=lambda item: len(answers[item[0]][item[1]]))  # similar lengths together: less padding
    longest = max(len(answers[p][a]) for p, a in items)
    rows_per_batch = max(1, budget // (width + longest))
    for start in range(0, len(items), rows_per_batch):
        batch = items[start : start + rows_per_batch]
        for (p, a), nll in zip(batch, _answers_on_prefix(model, keyword, prefix, first, prompts, answers, batch, width,
                                                       padded, device), strict=True):
            out[p][a] = nll


def _answers_on_prefix(model: Any, keyword: str, prefix: Any, first: Any, prompts: list[Sequence[int]],
                       answers: list[Sequence[Sequence[int]]], batch: list[tuple[int, int]], width: int, padded: bool,
                       device: str) -> list[float]:
    """One forward pass teacher-forcing ``batch``'s answers (all but their last token) after copies of their
    prompts' cache rows; each NLL is its first token's (from the prefill) plus the rest's."""
    import torch

    from arc_kit.solve.kv_cache import copy_rows

    targets = [list(answers[p][a]) for p, a in batch]
    rest = max(len(t) for t in targets) - 1  # columns fed: an answer's last token predicts nothing
    nlls = [-float(first[p, t[0]]) for (p, _), t in zip(batch, targets, strict=True)]
    if rest < 1:
        return nlls
    index = torch.tensor([p for p, _ in batch], dtype=torch.long, device=first.device)
    cache = copy_rows(prefix, index, width + rest)
    ids = torch.zeros((len(batch), rest), dtype=torch.long)
    for r, t in enumerate(targets):
        ids[r, : len(t) - 1] = torch.tensor(t[:-1], dtype=torch.long)
    lengths = torch.tensor([len(prompts[p]) for p, _ in batch], dtype=torch.long)
    positions = lengths[:, None] + torch.arange(rest)[None]
    kwargs: dict[str, Any] = {}
    if padded:
        mask = torch.ones((len(batch), width + rest), dtype=torch.long)
        for r, (p, _) in enumerate(batch):
            mask[r, : width - len(prompts[p])] = 0
        kwargs["attention_mask"] = mask.to(device)
    logits = model(input_ids=ids.to(device), position_ids=positions.to(device), use_cache=True, **kwargs,
                   **{keyword: cache}).logits
    for r, t in enumerate(targets):
        span = logits[r, : len(t) - 1].float()
        target = torch.tensor(t[1:], dtype=torch.long, device=span.device)
        picked = span.gather(-1, target[:, None])[:, 0]
        nlls[r] += float((torch.logsumexp(span, dim=-1) - picked).sum())
        del span
    return nlls
