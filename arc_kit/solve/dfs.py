"""Candidate answers by depth-first search: every completion whose probability is at least ``p``, with its NLL.

Why: greedy decoding gives one answer per prompt, and a single wrong cell early on sends it astray. The ARChitects
(ARC Prize 2024) and NVARC (2025) instead enumerate every answer the model finds at least ``p`` likely (``p`` around
0.1-0.2) and re-score those candidates under augmented views; the right grid is often the second or third most
likely, not the first. Background: ``docs/solver.md``.

How (ARChitects' Algorithm 1): bound = -ln p. A node is a prefix with accumulated NLL ``s``; for each allowed token
``t`` (the answer's tokens plus the end tokens) ``s' = s + nll(t)``, with the softmax over the model's *whole*
vocabulary so probabilities mean what they say. For a model whose vocabulary was cut to its format's tokens
(``arc_kit.models.vocab``: NVARC's 16) that whole vocabulary is the kept tokens, so probabilities are normalised
over them: the same ``p`` then keeps at least the completions it kept before the cut, and NVARC's 0.2 was set on
such a model. A child with ``s'`` above the bound is pruned: NLL only grows with length, so no
completion below it can come back under the bound. An end token emits a candidate; any other token is fed to the
model and the search recurses. Children are explored most likely first, so a cap on candidates or a deadline keeps
the best found so far.

The KV cache makes each node cost one single-token forward pass: one prefill of the prompt into a cache from
``arc_kit.solve.kv_cache`` (preallocated for prompt + answer and written in place; ``DynamicCache`` as the
fallback), then, when the search moves to a sibling or back up a branch, the cache is cropped back to the branch
point instead of recomputed.

With ``p > 0.5`` at most one token per step can stay under the bound, so the search is exactly the greedy
completion (when it is at least ``p`` likely) or nothing.

torch and transformers are imported inside functions: the runner imports solver modules in worker processes only
after it has set ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from arc_kit.core.formats import answer_token_ids  # noqa: F401 - the ids a search expands, by prompt format

log = logging.getLogger(__name__)

# NLLs are sums of float32 log-probabilities; a completion exactly at the bound must not be lost to rounding.
NLL_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Candidate:
    token_ids: tuple[int, ...]  # the answer's tokens, end token included
    nll: float  # -sum of log-probabilities of those tokens (end token included), softmax over the whole vocabulary

    @property
    def probability(self) -> float:
        return math.exp(-self.nll)


@dataclass
class DfsResult:
    candidates: list[Candidate]  # sorted by nll, then token ids (deterministic)
    timed_out: bool  # stop_at passed before the search finished: candidates are what was found so far
    forward_passes: int  # model calls, the prompt's prefill included


def dfs_candidates(
    model: Any,
    prompt_ids: Sequence[int],
    *,
    min_probability: float,
    expand_ids: Sequence[int],
    end_ids: Sequence[int],
    max_new_tokens: int,
    max_candidates_per_view: int,
    device: str,
    prefill_chunk_tokens: int,
    kv_cache: str,
    stop_at: float | None = None,
    _recompute: bool = False,
) -> DfsResult:
    """Every completion of ``prompt_ids`` at least ``min_probability`` likely that ends in one of ``end_ids``.

    A completion is ``expand_ids`` tokens followed by one end token, at most ``max_new_tokens`` tokens in all (end
    token included); one that reaches the bound without an end token is not a candidate. The search stops at
    ``max_candidates_per_view`` candidates (the most likely branches are explored first) and, with ``timed_out=True``, as
    soon as ``time.time() >= stop_at`` (checked before every forward pass); it returns what it found, never
    raises for the deadline.

    ``prefill_chunk_tokens``: the prompt is prefilled this many tokens at a time (the deadline is checked between chunks).
    ``kv_cache``: ``"inplace"`` or ``"dynamic"`` (``arc_kit.solve.kv_cache``); a model that refuses the in-place
    cache at the prefill is searched with ``DynamicCache``.
    ``_recompute`` is for tests: each step runs the whole prompt + prefix again instead of using the cache, the
    reference the cached search must match.
    """
    if not 0.0 < min_probability <= 1.0:
        raise ValueError(f"min_probability must be in (0, 1], got {min_probability}")
    if not prompt_ids:
        raise ValueError("prompt_ids is empty: there is nothing to condition on")
    bound = -math.log(min_probability) + NLL_TOLERANCE
    ends = frozenset(int(t) for t in end_ids)
    allowed = sorted(ends | {int(t) for t in expand_ids})  # a token in both lists ends the answer
    if max_new_tokens < 1 or max_candidates_per_view < 1 or not ends:
        return DfsResult([], False, 0)

    import torch

    search = _Search(model, [int(t) for t in prompt_ids], allowed, device, stop_at, max(1, prefill_chunk_tokens), _recompute,
                     kv_cache, len(prompt_ids) + max_new_tokens)
    found: list[Candidate] = []

    with torch.inference_mode():
        logprobs = search.prefill()
        if logprobs is None:
            return DfsResult([], True, search.forward_passes)
        # A frame is a node still being explored: its prefix, and its children under the bound, most likely first.
        # An explicit stack rather than recursion: answers run to 930 tokens, past Python's recursion limit.
        stack: list[tuple[tuple[int, ...], list[tuple[float, int]]]] = [((), search.children(0.0, logprobs, bound))]
        while stack:
            prefix, children = stack[-1]
            if not children:
                stack.pop()
                continue
            nll, token = children.pop(0)
            path = (*prefix, token)
            if token in ends:
                found.append(Candidate(path, nll))
                if len(found) >= max_candidates_per_view:
                    break
                continue
            if len(path) >= max_new_tokens:  # no room left for an end token: not a candidate
                continue
            logprobs = search.step(path)
            if logprobs is None:
                return DfsResult(_sorted(found), True, search.forward_passes)
            stack.append((path, search.children(nll, logprobs, bound)))
    return DfsResult(_sorted(found), False, search.forward_passes)


def _sorted(found: list[Candidate]) -> list[Candidate]:
    return sorted(found, key=lambda c: (c.nll, c.token_ids))


class _Search:
    """The model side of the search: the cache, the forward passes, the deadline and the pass count."""

    def __init__(self, model: Any, prompt: list[int], allowed: list[int], device: str, stop_at: float | None,
                 prefill_chunk: int, recompute: bool, kv_cache: str, capacity: int):
        import torch

        self.model = model
        self.prompt = prompt
        self.allowed = allowed
        self.allowed_index = torch.tensor(allowed, dtype=torch.long, device=device)
        self.device = device
        self.stop_at = stop_at
        self.prefill_chunk = prefill_chunk
        self.recompute = recompute
        self.kv_cache = kv_cache
        self.capacity = max(capacity, len(prompt) + 1)
        self.cache: Any = None
        self.forward_passes = 0

    def _deadline_passed(self) -> bool:
        return self.stop_at is not None and time.time() >= self.stop_at

    def _logprobs(self, logits: Any) -> Any:
        """Log-probabilities of the allowed tokens at the last position, normalised over the whole vocabulary."""
        return logits[0, -1].float().log_softmax(-1)[self.allowed_index].tolist()

    def prefill(self) -> list[float] | None:
        """Run the prompt into a fresh cache; the first answer token's log-probabilities, None past the deadline."""
        import torch

        if self._deadline_passed():
            return None
        self.forward_passes += 1
        if self.recompute:
            ids = torch.tensor([self.prompt], dtype=torch.long, device=self.device)
            return self._logprobs(self.model(input_ids=ids, use_cache=False, logits_to_keep=1).logits)
        from arc_kit.solve.kv_cache import run_with_fallback

        logprobs, self.kv_cache = run_with_fallback(self.kv_cache, self._prefill_cache, self.model)
        return logprobs

    def _prefill_cache(self, kind: str) -> list[float] | None:
        import torch

        from arc_kit.solve.kv_cache import check_filled, new_cache

        ids = torch.tensor([self.prompt], dtype=torch.long, device=self.device)
        self.cache = new_cache(kind, self.model.config, self.capacity)
        # In chunks, as the greedy decoder does: activations stay bounded and the deadline is checked between
        # chunks. logits_to_keep=1: an 8k prompt's full logits over a 150k vocabulary would be gigabytes.
        logits = None
        for start in range(0, ids.shape[1], self.prefill_chunk):
            if start and self._deadline_passed():
                return None
            chunk = ids[:, start : start + self.prefill_chunk]
            positions = torch.arange(start, start + chunk.shape[1], device=self.device)[None]
            logits = self.model(input_ids=chunk, position_ids=positions, past_key_values=self.cache,
                                use_cache=True, logits_to_keep=1).logits
        if kind == "inplace":
            check_filled(self.cache, ids.shape[1])
        if not getattr(self.cache, "is_croppable", True):
            # A layer whose state cannot be rolled back (linear attention, a recurrent state) would make every
            # branch after the first see its siblings' tokens: slower but right beats fast and wrong.
            log.warning("%s's cache cannot be cropped; the search recomputes every prefix",
                        type(self.model).__name__)
            self.recompute = True
        return self._logprobs(logits)

    def step(self, path: tuple[int, ...]) -> list[float] | None:
        """Log-probabilities after prompt + ``path``, feeding only ``path``'s last token; None past the deadline.

        The cache may hold a longer branch the search has just left: it is cropped back to prompt + path[:-1]
        first. ``crop`` is called with a negative count (tokens to remove), the one form every transformers
        release accepts (5.x refuses a positive length).
        """
        import torch

        if self._deadline_passed():
            return None
        self.forward_passes += 1
        if self.recompute:
            ids = torch.tensor([[*self.prompt, *path]], dtype=torch.long, device=self.device)
            return self._logprobs(self.model(input_ids=ids, use_cache=False, logits_to_keep=1).logits)
        keep = len(self.prompt) + len(path) - 1
        extra = self.cache.get_seq_length() - keep
        if extra > 0:
            self.cache.crop(-extra)
        ids = torch.tensor([[path[-1]]], dtype=torch.long, device=self.device)
        positions = torch.tensor([[keep]], dtype=torch.long, device=self.device)
        logits = self.model(input_ids=ids, position_ids=positions, past_key_values=self.cache,
                            use_cache=True).logits
        return self._logprobs(logits)

    def children(self, nll: float, logprobs: list[float], bound: float) -> list[tuple[float, int]]:
        """(accumulated NLL, token) of every allowed child still under the bound, most likely first."""
        kids = [(nll - lp, t) for t, lp in zip(self.allowed, logprobs, strict=True) if nll - lp <= bound]
        kids.sort()
        return kids
