"""Candidate answers by depth-first search: every completion whose probability is at least ``p``, with its NLL.

Why: greedy decoding gives one answer per prompt, and a single wrong cell early on sends it astray. The ARChitects
(ARC Prize 2024) and NVARC (2025) instead enumerate every answer the model finds at least ``p`` likely (``p`` around
0.1-0.2) and re-score those candidates under augmented views; the right grid is often the second or third most
likely, not the first. Background: ``docs/solver.md``.

How (ARChitects' Algorithm 1): bound = -ln p. A node is a prefix with accumulated NLL ``s``; for each allowed token
``t`` (the answer's tokens plus the end tokens) ``s' = s + nll(t)``, with the softmax over the model's *whole*
vocabulary so probabilities mean what they say. For a model whose vocabulary was shrunk to its format's tokens
(``arc_kit.models.vocab``: NVARC's 16) that whole vocabulary is the kept tokens, so probabilities are normalised
over them: the same ``p`` then keeps at least the completions it kept before the shrink, and NVARC's 0.2 was set on
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

``dfs_lockstep`` searches several prompts (the views of a test input) as one batch: one forward pass a step for
every row still searching, each row with its own stack and its own depth in the cache. ``dfs_candidates`` searches
one prompt; it is the reference the lock-step search must match, and the fallback for a model whose cache cannot
be written per row.

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
    keep_greedy: bool = False,
    stop_at: float | None = None,
    _recompute: bool = False,
) -> DfsResult:
    """Every completion of ``prompt_ids`` at least ``min_probability`` likely that ends in one of ``end_ids``,
    searched alone (``dfs_lockstep`` searches several prompts at once and finds the same).

    A completion is ``expand_ids`` tokens followed by one end token, at most ``max_new_tokens`` tokens in all (end
    token included); one that reaches the bound without an end token is not a candidate. The search stops at
    ``max_candidates_per_view`` candidates (the most likely branches are explored first) and, with ``timed_out=True``, as
    soon as ``time.time() >= stop_at`` (checked before every forward pass); it returns what it found, never
    raises for the deadline.

    ``keep_greedy``: the greedy completion (the most likely allowed token at every step) is followed to its end
    token whatever its probability and is a candidate even below ``min_probability``: the search then replaces
    greedy decoding instead of running beside it (the greedy path is the first branch it explores anyway).
    ``prefill_chunk_tokens``: the prompt is prefilled this many tokens at a time (the deadline is checked between chunks).
    ``kv_cache``: ``"inplace"`` or ``"dynamic"`` (``arc_kit.solve.kv_cache``); a model that refuses the in-place
    cache at the prefill is searched with ``DynamicCache``.
    ``_recompute`` is for tests: each step runs the whole prompt + prefix again instead of using the cache, the
    reference the cached search must match.
    """
    row = _RowSearch.checked(min_probability, expand_ids, end_ids, max_new_tokens, max_candidates_per_view,
                             keep_greedy)
    if not prompt_ids:
        raise ValueError("prompt_ids is empty: there is nothing to condition on")
    if row is None:
        return DfsResult([], False, 0)

    import torch

    search = _Search(model, [int(t) for t in prompt_ids], row.allowed, device, stop_at, max(1, prefill_chunk_tokens),
                     _recompute, kv_cache, len(prompt_ids) + max_new_tokens)
    with torch.inference_mode():
        logprobs = search.prefill()
        if logprobs is None:
            return DfsResult([], True, search.forward_passes)
        row.start(logprobs)
        while (path := row.next_path()) is not None:
            logprobs = search.step(path)
            if logprobs is None:
                return row.result(True, search.forward_passes)
            row.feed(logprobs)
    return row.result(False, search.forward_passes)


class _RowSearch:
    """One prompt's search, apart from the model: the explicit stack, the bound, the candidates found.

    The model side asks ``next_path()`` for the next prefix it must run (None when the search is over) and hands
    the log-probabilities after it to ``feed``; the sequential search and the lock-step one drive the same object,
    so they explore the same nodes in the same order.

    A frame is a node still being explored: its prefix, its children under the bound (most likely first), and
    whether it lies on the greedy path (``keep_greedy``). An explicit stack rather than recursion: answers run to
    930 tokens, past Python's recursion limit.
    """

    def __init__(self, bound: float, allowed: list[int], ends: frozenset[int], max_new_tokens: int, cap: int,
                 keep_greedy: bool):
        self.bound, self.allowed, self.ends = bound, allowed, ends
        self.max_new_tokens, self.cap, self.keep_greedy = max_new_tokens, cap, keep_greedy
        self.stack: list[list[Any]] = []  # [prefix, children, on the greedy path and not yet popped]
        self.found: list[Candidate] = []
        self.pending: tuple[tuple[int, ...], float, bool] | None = None
        self.passes = 0  # forward passes this prompt needed, its prefill included

    @classmethod
    def checked(cls, min_probability: float, expand_ids: Sequence[int], end_ids: Sequence[int], max_new_tokens: int,
                cap: int, keep_greedy: bool) -> _RowSearch | None:
        """A search, or None when there is nothing to search (no room, no end token, no candidate allowed)."""
        if not 0.0 < min_probability <= 1.0:
            raise ValueError(f"min_probability must be in (0, 1], got {min_probability}")
        ends = frozenset(int(t) for t in end_ids)
        allowed = sorted(ends | {int(t) for t in expand_ids})  # a token in both lists ends the answer
        if max_new_tokens < 1 or cap < 1 or not ends:
            return None
        return cls(-math.log(min_probability) + NLL_TOLERANCE, allowed, ends, max_new_tokens, cap, keep_greedy)

    def start(self, logprobs: list[float]) -> None:
        """The root's children, from the log-probabilities after the prompt."""
        self.passes += 1
        self.stack = [[(), self._children(0.0, logprobs, self.keep_greedy), self.keep_greedy]]

    def next_path(self) -> tuple[int, ...] | None:
        """Walk the stack to the next prefix that needs a forward pass, emitting the candidates met on the way;
        None when the search is over (every branch explored, or the candidate cap reached)."""
        while self.stack:
            frame = self.stack[-1]
            prefix, children, greedy = frame
            if not children:
                self.stack.pop()
                continue
            nll, token = children.pop(0)
            frame[2] = False  # only the first child popped continues the greedy path
            path = (*prefix, token)
            if token in self.ends:
                self.found.append(Candidate(path, nll))
                if len(self.found) >= self.cap:
                    self.stack.clear()
                    return None
                continue
            if len(path) >= self.max_new_tokens:  # no room left for an end token: not a candidate
                continue
            self.pending = (path, nll, greedy)
            return path
        return None

    def feed(self, logprobs: list[float]) -> None:
        """The log-probabilities after the path ``next_path`` returned: push its children."""
        path, nll, greedy = self.pending
        self.passes += 1
        self.stack.append([path, self._children(nll, logprobs, greedy), greedy])

    def _children(self, nll: float, logprobs: list[float], greedy: bool) -> list[tuple[float, int]]:
        """(accumulated NLL, token) of every allowed child still under the bound, most likely first; on the greedy
        path the most likely child is kept even above it."""
        kids = sorted((nll - lp, t) for t, lp in zip(self.allowed, logprobs, strict=True))
        under = [k for k in kids if k[0] <= self.bound]
        if greedy and kids and not under:
            return kids[:1]
        return under

    def result(self, timed_out: bool, forward_passes: int | None = None) -> DfsResult:
        found = sorted(self.found, key=lambda c: (c.nll, c.token_ids))
        return DfsResult(found, timed_out, self.passes if forward_passes is None else forward_passes)


class _Search:
    """The model side of the sequential search: the cache, the forward passes, the deadline and the pass count."""

    def __init__(self, model: Any, prompt: list[int], allowed: list[int], device: str, stop_at: float | None,
                 prefill_chunk: int, recompute: bool, kv_cache: str, capacity: int):
        import torch

        from arc_kit.solve.kv_cache import cache_keyword

        self.model = model
        self.cache_keyword = cache_keyword(model)
        self.prompt = prompt
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
            logits = self.model(input_ids=chunk, position_ids=positions, use_cache=True, logits_to_keep=1,
                                **{self.cache_keyword: self.cache}).logits
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
        logits = self.model(input_ids=ids, position_ids=positions, use_cache=True,
                            **{self.cache_keyword: self.cache}).logits
        return self._logprobs(logits)


# ---------------------------------------------------------------------------------------------------------------
# Lock-step: several prompts searched as one batch


@dataclass
class LockstepResult:
    results: list[DfsResult]  # one per prompt, in the order given; each as the prompt's search alone would give
    forward_passes: int  # batched model calls (a batch's prefill counts once), the cost a GPU pays
    batches: int  # how many batches the prompts were searched in
    kv_cache: str  # the cache it ran with: "inplace" (lock-step), or "dynamic" when the model refused it


def dfs_lockstep(
    model: Any,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: Sequence[int],
    min_probability: float,
    expand_ids: Sequence[int],
    end_ids: Sequence[int],
    max_candidates_per_view: int,
    device: str,
    prefill_chunk_tokens: int,
    batch_size: int,
    batch_tokens: int,
    kv_cache: str,
    keep_greedy: bool = False,
    stop_at: float | None = None,
) -> LockstepResult:
    """``dfs_candidates`` for every prompt (its own ``max_new_tokens``), the prompts searched together.

    Why: a search step feeds one token, and a decoding step reads every weight once whatever the batch, so on
    a GPU eight rows cost about what one does. Searched one after another the 8 views of a test input pay for
    every step eight times; in lock-step a batch pays once per step for the row that needs the most steps.

    How: prompts are packed as the greedy decoder packs them (``length_batches``: sorted by length, so views of
    equal length, which colour permutations and same-shape rotations give, share a batch without padding; the
    rest are left-padded). Each row keeps its own stack (``_RowSearch``); every step each row still searching
    feeds the next token of its own branch, written at its own depth of the in-place KV cache
    (``prepare_rowwise_step``: a per-row crop), and a 2-D attention mask hides, per row, the padding before its
    prompt and whatever lies past its depth. A row leaves the batch when its search ends. Each row explores the
    same nodes in the same order as alone, so the candidates and NLLs are the sequential search's (up to the
    float rounding of batched kernels) and each result's ``forward_passes`` counts the passes it needed alone.

    The lock-step search needs the in-place cache: with ``kv_cache = "dynamic"``, or a model that refuses the
    in-place cache or has a layer that cannot be cropped per row, each prompt is searched alone. Out of GPU
    memory, a batch is split in half and searched again.
    """
    from arc_kit.solve.decoding import length_batches
    from arc_kit.solve.kv_cache import CacheRejected

    if len(max_new_tokens) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(max_new_tokens)} answer bounds")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("a prompt is empty: there is nothing to condition on")
    out = LockstepResult([DfsResult([], False, 0) for _ in prompts], 0, 0, kv_cache)
    if _RowSearch.checked(min_probability, expand_ids, end_ids, 1, max_candidates_per_view, keep_greedy) is None:
        return out  # no end token or no candidate wanted: nothing to search
    search = dict(min_probability=min_probability, expand_ids=expand_ids, end_ids=end_ids,
                  max_candidates_per_view=max_candidates_per_view, device=device,
                  prefill_chunk_tokens=prefill_chunk_tokens, keep_greedy=keep_greedy, stop_at=stop_at)
    batches = length_batches([(len(p), n) for p, n in zip(prompts, max_new_tokens, strict=True)],
                             batch_size=batch_size, batch_tokens=batch_tokens)
    for batch in batches:
        rows = [i for i in batch if max_new_tokens[i] >= 1]
        if not rows:
            continue
        out.batches += 1
        if out.kv_cache == "inplace":
            try:
                got = _lockstep_split_on_oom(model, [prompts[i] for i in rows], [max_new_tokens[i] for i in rows],
                                             search, out)
            except CacheRejected as e:
                log.warning("%s cannot be searched in lock-step (%s); searching one prompt at a time",
                            type(model).__name__, e)
                out.kv_cache = "dynamic"
            else:
                for i, result in zip(rows, got, strict=True):
                    out.results[i] = result
                continue
        for i in rows:
            out.results[i] = dfs_candidates(model, prompts[i], max_new_tokens=max_new_tokens[i], kv_cache="dynamic",
                                            **search)
            out.forward_passes += out.results[i].forward_passes
    return out


def _lockstep_split_on_oom(model: Any, prompts: list[Sequence[int]], bounds: list[int], search: dict[str, Any],
                           out: LockstepResult) -> list[DfsResult]:
    """One lock-step batch; out of GPU memory, each half again, down to one row, before the error reaches the
    task."""
    import torch

    try:
        return _LockstepBatch(model, prompts, bounds, search, out).run()
    except torch.OutOfMemoryError:
        if len(prompts) == 1:
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = len(prompts) // 2
        return [*_lockstep_split_on_oom(model, prompts[:half], bounds[:half], search, out),
                *_lockstep_split_on_oom(model, prompts[half:], bounds[half:], search, out)]


class _LockstepBatch:
    """One batch of a lock-step search: the rows' searches, their cache and the batched forward passes."""

    def __init__(self, model: Any, prompts: list[Sequence[int]], bounds: list[int], search: dict[str, Any],
                 out: LockstepResult):
        import torch

        from arc_kit.solve.kv_cache import cache_keyword

        self.model, self.out = model, out
        self.cache_keyword = cache_keyword(model)
        self.device = search["device"]
        self.stop_at = search["stop_at"]
        self.prefill_chunk = max(1, search["prefill_chunk_tokens"])
        self.rows = [_RowSearch.checked(search["min_probability"], search["expand_ids"], search["end_ids"], bound,
                                        search["max_candidates_per_view"], search["keep_greedy"]) for bound in bounds]
        self.prompts = [[int(t) for t in p] for p in prompts]
        self.width = max(len(p) for p in self.prompts)  # the prompts' columns; a row's answer starts after them
        self.capacity = self.width + max(bounds)
        allowed = next(r.allowed for r in self.rows if r is not None)
        self.allowed_index = torch.tensor(allowed, dtype=torch.long, device=self.device)

    def _deadline_passed(self) -> bool:
        return self.stop_at is not None and time.time() >= self.stop_at

    def _logprobs(self, logits: Any) -> list[list[float]]:
        return logits[:, -1].float().log_softmax(-1)[:, self.allowed_index].tolist()

    def run(self) -> list[DfsResult]:
        import torch

        with torch.inference_mode():
            cache, logprobs = self._prefill()
            if logprobs is None:  # the deadline came first
                return [DfsResult([], True, 0) for _ in self.rows]
            live = []  # indices of the rows still searching, in the cache's row order
            for i, (row, lp) in enumerate(zip(self.rows, logprobs, strict=True)):
                if row is not None:
                    row.start(lp)
                    live.append(i)
            lengths = [len(p) for p in self.prompts]
            in_cache = list(range(len(self.rows)))  # the row behind each cache row
            timed_out = False
            while True:
                paths = {i: self.rows[i].next_path() for i in live}
                live = [i for i in live if paths[i] is not None]
                if not live:
                    break
                if self._deadline_passed():
                    timed_out = True
                    break
                if live != in_cache:
                    keep = torch.tensor([in_cache.index(i) for i in live], dtype=torch.long, device=self.device)
                    cache.batch_select_indices(keep)
                    in_cache = list(live)
                depths = [len(paths[i]) for i in live]
                logprobs = self._step(cache, [paths[i][-1] for i in live],
                                      [self.width + d - 1 for d in depths],  # right after each row's prefix
                                      [self.width - lengths[i] for i in live],
                                      [lengths[i] + d - 1 for i, d in zip(live, depths, strict=True)])
                for i, lp in zip(live, logprobs, strict=True):
                    self.rows[i].feed(lp)
        return [DfsResult([], False, 0) if row is None
                else row.result(timed_out and i in live) for i, row in enumerate(self.rows)]

    def _prefill(self) -> tuple[Any, list[list[float]] | None]:
        """The prompts, left-padded, run into a fresh in-place cache in chunks (the deadline checked before each);
        ``CacheRejected`` when the model does not fill it or a layer cannot be written per row."""
        from arc_kit.solve.kv_cache import prefill_rowwise

        cache, logits = prefill_rowwise(self.model, self.prompts, capacity=self.capacity, device=self.device,
                                        chunk=self.prefill_chunk, stop=self._deadline_passed)
        if logits is None:
            return cache, None
        self.out.forward_passes += 1
        return cache, self._logprobs(logits)

    def _step(self, cache: Any, tokens: list[int], columns: list[int], padding: list[int],
              positions: list[int]) -> list[list[float]]:
        """One batched forward pass: each live row's next token at its own column (after ``padding`` columns
        before its prompt) and its own position."""
        import torch

        from arc_kit.solve.kv_cache import prepare_rowwise_step

        self.out.forward_passes += 1
        width = prepare_rowwise_step(cache, columns)
        kwargs = {}
        if any(padding) or min(columns) != width - 1:  # else every row sees every column: no mask, the fast path
            span = torch.arange(width)
            mask = ((span[None] >= torch.tensor(padding)[:, None]) & (span[None] <= torch.tensor(columns)[:, None]))
            kwargs["attention_mask"] = mask.long().to(self.device)
        ids = torch.tensor(tokens, dtype=torch.long, device=self.device)[:, None]
        where = torch.tensor(positions, dtype=torch.long, device=self.device)[:, None]
        logits = self.model(input_ids=ids, position_ids=where, use_cache=True, **kwargs,
                            **{self.cache_keyword: cache}).logits
        return self._logprobs(logits)
