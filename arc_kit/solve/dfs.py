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

``dfs_lockstep`` searches several prompts (the views of a test input) as one batch, each prompt one node a pass,
or (``side_by_side``, what the solver runs) with a prompt's pending branches side by side in the rows the budget
leaves spare: each pass runs a node of every branch of every prompt, each branch in its own row of the cache at its
own depth. ``dfs_candidates`` searches one prompt one node a pass;
it is the reference the lock-step search must match (the same candidates; under the candidate cap the same first
ones in depth-first order), and the fallback for a model whose cache cannot be written per row.

torch and transformers are imported inside functions: the runner imports solver modules in worker processes only
after it has set ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import heapq
import itertools
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
    forward_passes: int  # model calls this prompt took part in, its prefill included (batched ones count once)
    nodes: int = 0  # prefixes run after the prefill (the tokens the search fed); alone, forward_passes - 1


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


class _Node:
    """A prefix the search must still run through the model: its tokens, its accumulated NLL, whether it lies on
    the greedy path (``keep_greedy``) and its place in the depth-first order.

    ``key`` is the rank of each token among its parent's children (0: the most likely), from the root down. The
    sequential search visits nodes in increasing ``key`` (tuple order: a node before its children, a child before
    its later siblings and their subtrees), so the key says "which would it find first" for nodes the lock-step
    search runs at the same time.
    """

    __slots__ = ("key", "path", "nll", "greedy")

    def __init__(self, key: tuple[int, ...], path: tuple[int, ...], nll: float, greedy: bool):
        self.key, self.path, self.nll, self.greedy = key, path, nll, greedy


class _Branch:
    """A part of one prompt's search that one cache row explores depth first: its pending nodes, in decreasing
    ``key`` (the last is the next to run: popping it is the depth-first step), and the node it is running.

    Every pending node's parent is on the branch's current path (the prefix its cache row holds), because a
    branch only ever runs its own most urgent node: the part of its old path that running a node overwrites (an
    earlier sibling's subtree) has no pending node left, as any would have come first. So a row never needs a prefix it
    has overwritten, and a node handed to a new branch starts from a copy of its donor's row. ``cache_row`` is
    the model side's bookkeeping (which row of the batch's cache holds it).
    """

    __slots__ = ("stack", "running", "cache_row")

    def __init__(self, stack: list[_Node], cache_row: int = 0):
        self.stack, self.running, self.cache_row = stack, None, cache_row


class _RowSearch:
    """One prompt's search, apart from the model: its branches, the bound, the candidates found.

    The sequential search has one branch and asks ``next_path()`` for the next prefix it must run (None when the
    search is over) and hands the log-probabilities after it to ``feed``: the depth-first search of the
    ARChitects. The lock-step search asks ``next_nodes(extra)`` for a pass's work: every branch's next node, and
    up to ``extra`` more nodes (the most urgent of the rest, in ``key`` order), each the start of a new branch;
    ``feed_pass`` takes the log-probabilities of all of them. Both drive this object, so they explore the same
    tree: every node under the bound, whatever runs beside it.

    The candidate cap keeps the first ``cap`` candidates in depth-first order (the smallest keys), whichever
    order they were found in: the same set the sequential search stops at. Once ``cap`` are found, pending nodes
    that come after the last kept candidate are dropped, and the search ends when no pending node comes before
    it. Explicit stacks rather than recursion: answers run to 930 tokens, past Python's recursion limit.
    """

    def __init__(self, bound: float, allowed: list[int], ends: frozenset[int], max_new_tokens: int, cap: int,
                 keep_greedy: bool):
        self.bound, self.allowed, self.ends = bound, allowed, ends
        self.max_new_tokens, self.cap, self.keep_greedy = max_new_tokens, cap, keep_greedy
        self.branches: list[_Branch] = []  # those with pending nodes
        self.found: list[tuple[tuple[int, ...], Candidate]] = []  # (key, candidate)
        self.passes = 0  # forward passes this prompt took part in, its prefill included
        self.nodes = 0  # nodes run through the model after the prefill

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

    def start(self, logprobs: list[float], cache_row: int = 0) -> None:
        """The root's children, from the log-probabilities after the prompt."""
        self.passes += 1
        root = _Branch([], cache_row)
        self._expand(root, _Node((), (), 0.0, self.keep_greedy), logprobs)
        self.branches = [root]
        self._settle()

    # -- the sequential search: one branch, one node a pass

    def next_path(self) -> tuple[int, ...] | None:
        """The next prefix that needs a forward pass, None when the search is over (every branch explored, or
        the candidate cap reached)."""
        if not self.branches:
            return None
        (branch,) = self.branches
        branch.running = branch.stack.pop()
        return branch.running.path

    def feed(self, logprobs: list[float]) -> None:
        """The log-probabilities after the path ``next_path`` returned."""
        self.feed_pass([(self.branches[0], logprobs)])

    # -- the lock-step search: every branch one node a pass, new branches in spare rows

    def spare(self) -> int:
        """Pending nodes no branch runs next: the most rows beyond its branches this search could use now."""
        return sum(len(b.stack) for b in self.branches) - len(self.branches)

    def next_nodes(self, extra: int) -> list[tuple[_Branch, _Branch | None]]:
        """A pass's work: each branch's most urgent node, then the ``extra`` most urgent of the rest (smallest
        ``key`` over all branches), each taken from its branch into a new one. (branch, donor) pairs: the donor
        is None for a branch that keeps its row, else the branch whose row the new one starts from a copy of
        (it holds the new node's parent). The node to run is each branch's ``running``."""
        for branch in self.branches:
            branch.running = branch.stack.pop()
        work: list[tuple[_Branch, _Branch | None]] = [(b, None) for b in self.branches]
        if extra > 0:
            # Each stack lists its nodes most urgent last: walked backwards they come in key order.
            merged = heapq.merge(*[zip((n.key for n in reversed(b.stack)), itertools.repeat(i))
                                   for i, b in enumerate(self.branches)])
            taken = [0] * len(self.branches)
            for _, i in itertools.islice(merged, extra):
                donor = self.branches[i]
                taken[i] += 1
                new = _Branch([])
                new.running = donor.stack[-taken[i]]
                work.append((new, donor))
            for branch, count in zip(self.branches, taken, strict=True):
                if count:
                    del branch.stack[-count:]
            self.branches.extend(new for new, _ in work[len(self.branches):])
        return work

    def feed_pass(self, fed: Sequence[tuple[_Branch, list[float]]]) -> None:
        """The log-probabilities after each branch's running node, from one forward pass: push their children."""
        self.passes += 1
        for branch, logprobs in fed:
            self._expand(branch, branch.running, logprobs)
            branch.running = None
            self.nodes += 1
        self._settle()

    def _expand(self, branch: _Branch, node: _Node, logprobs: list[float]) -> None:
        """``node``'s children under the bound (on the greedy path, the most likely even above it): an end token
        is a candidate, any other token a pending node of ``branch`` unless there is no room left for an end."""
        kids = [(node.nll - lp, t) for t, lp in zip(self.allowed, logprobs, strict=True)]
        under = sorted(k for k in kids if k[0] <= self.bound)
        if node.greedy and kids and not under:
            under = [min(kids)]
        for rank in range(len(under) - 1, -1, -1):  # the most likely is pushed last: it runs next
            nll, token = under[rank]
            key, path = (*node.key, rank), (*node.path, token)
            if token in self.ends:
                self.found.append((key, Candidate(path, nll)))
            elif len(path) < self.max_new_tokens:  # else no room left for an end token: not a candidate
                branch.stack.append(_Node(key, path, nll, node.greedy and rank == 0))

    def _settle(self) -> None:
        """Apply the candidate cap (the first ``cap`` in depth-first order; nothing after the last of them is
        worth running) and drop the branches with nothing left."""
        if len(self.found) >= self.cap:
            self.found.sort(key=lambda f: f[0])
            del self.found[self.cap:]
            last = self.found[-1][0]
            for branch in self.branches:
                if branch.stack and branch.stack[0].key > last:
                    branch.stack = [n for n in branch.stack if n.key < last]
        self.branches = [b for b in self.branches if b.stack]

    def result(self, timed_out: bool, forward_passes: int | None = None) -> DfsResult:
        found = sorted((c for _, c in self.found), key=lambda c: (c.nll, c.token_ids))
        return DfsResult(found, timed_out, self.passes if forward_passes is None else forward_passes, self.nodes)


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
    results: list[DfsResult]  # one per prompt, in the order given; each its forward passes in this search
    forward_passes: int  # batched model calls (a batch's prefill counts once), the cost a GPU pays
    batches: int  # how many batches the prompts were searched in
    kv_cache: str  # the cache it ran with: "inplace" (lock-step), or "dynamic" when the model refused it
    nodes: int = 0  # prefixes run after the prefills (rows of the batched passes): the search's work


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
    side_by_side: bool = False,
    stop_at: float | None = None,
) -> LockstepResult:
    """``dfs_candidates`` for every prompt (its own ``max_new_tokens``), the prompts searched together.

    Why: a search step feeds one token, and a decoding step reads every weight once whatever the batch, so on
    a GPU many rows cost about what one does. Searched one after another the 8 views of a test input pay for
    every node eight times over; and a view with several branches under the bound, searched one node a pass,
    needs more passes than its greedy path. With ``side_by_side`` a pass runs as many nodes as the batch has rows
    for; without it each prompt runs one node a pass, pass for pass its sequential search.

    How: prompts are packed as the greedy decoder packs them (``length_batches``: at most ``batch_size`` prompts
    and ``batch_tokens`` tokens, sorted by length, so views of equal length share a batch without padding; the
    rest are left-padded) and prefilled together. Each prompt's search (``_RowSearch``) is split into branches,
    each a depth-first search of part of the tree in its own row of the in-place KV cache; every pass each
    branch feeds the token of its next node at its own depth (``prepare_rowwise_step``: a per-row crop), and a
    2-D attention mask hides, per row, the padding before its prompt and whatever lies past its depth. With
    ``side_by_side``, rows the branches leave free take more nodes: the most urgent pending nodes no branch runs next (smallest depth-first
    ``key``), each starting a new branch in a row copied from the branch that holds its parent
    (``select_rows``). The free rows are shared among the prompts evenly (a prompt with few pending nodes takes
    them all, the rest split what is left), so the batch, which ends with its slowest prompt, is not held back
    by one prompt's branches. A branch that runs out of nodes gives its row back.

    The rows (``side_by_side``): at most ``batch_tokens // (widest prompt + largest answer room)``, never fewer
    than the batch's prompts: the cache never holds more tokens than the budget allows, counting the moment its
    buffers grow (old and new at once). Without ``side_by_side``, or with no row to spare, a prompt is one branch
    in one row and runs one node a pass, in depth-first order.

    What it finds: every node under the bound is run whatever runs beside it, so each prompt's candidates and
    NLLs are the sequential search's (up to the float rounding of batched kernels). Under the candidate cap a
    prompt keeps its first ``max_candidates_per_view`` candidates in depth-first order, the set the sequential
    search stops at, whichever order they were found in. Past the deadline (checked before every pass) each
    prompt keeps what it found, at most the cap, the first in depth-first order. Each result's
    ``forward_passes`` counts the batched passes it took part in (its prefill included); ``nodes`` is the work.

    The lock-step search needs the in-place cache: with ``kv_cache = "dynamic"``, or a model that refuses the
    in-place cache or has a layer that cannot be cropped per row, each prompt is searched alone. Out of GPU
    memory, a batch is searched again with half the rows (split in half while it has several prompts).
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
    row_tokens = batch_tokens if side_by_side else None  # the cache rows' budget; None: one row per prompt
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
                                             search, out, row_tokens, None)
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
            out.nodes += out.results[i].nodes
    return out


def _lockstep_split_on_oom(model: Any, prompts: list[Sequence[int]], bounds: list[int], search: dict[str, Any],
                           out: LockstepResult, row_tokens: int | None,
                           row_limit: int | None) -> list[DfsResult]:
    """One lock-step batch, its cache rows within ``row_tokens`` (None: one row per prompt, no spare rows); out
    of GPU memory, again with half the rows it could use, each half of its prompts apart while it has several,
    down to one prompt on one row, before the error reaches the task."""
    import torch

    batch = _LockstepBatch(model, prompts, bounds, search, out, row_tokens, row_limit)
    try:
        return batch.run()
    except torch.OutOfMemoryError:
        if batch.max_rows == 1:
            raise
    # Out of the except block: its traceback holds the failed batch's cache, which must be freed first.
    limit = max(1, batch.max_rows // 2)
    del batch
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if len(prompts) == 1:
        return _lockstep_split_on_oom(model, prompts, bounds, search, out, row_tokens, limit)
    half = len(prompts) // 2
    return [*_lockstep_split_on_oom(model, prompts[:half], bounds[:half], search, out, row_tokens, limit),
            *_lockstep_split_on_oom(model, prompts[half:], bounds[half:], search, out, row_tokens, limit)]


class _LockstepBatch:
    """One batch of a lock-step search: the prompts' searches, their cache rows and the batched forward passes."""

    def __init__(self, model: Any, prompts: list[Sequence[int]], bounds: list[int], search: dict[str, Any],
                 out: LockstepResult, row_tokens: int | None, row_limit: int | None):
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
        self.lengths = [len(p) for p in self.prompts]
        self.width = max(self.lengths)  # the prompts' columns; a row's answer starts after them
        self.capacity = self.width + max(bounds)
        self.side_by_side = row_tokens is not None  # else each prompt keeps to one branch in one row
        budget = (row_tokens or 0) // self.capacity
        self.max_rows = max(len(prompts), budget if row_limit is None else min(budget, row_limit))
        # Rows the cache's buffers hold: room beside the prompts from the start (a growth needs old and new
        # buffers at once, so a budget under twice the prompts could never grow), more when needed (``_arrange``).
        self.room = min(self.max_rows, 2 * len(prompts))
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
            live = []  # the prompts still searching
            for i, (row, lp) in enumerate(zip(self.rows, logprobs, strict=True)):
                if row is not None:
                    row.start(lp, cache_row=i)
                    live.append(i)
            timed_out = False
            while True:
                live = [i for i in live if self.rows[i].branches]
                if not live:
                    break
                if self._deadline_passed():
                    timed_out = True
                    break
                work = self._arrange(cache, self._plan(live))
                depths = [len(b.running.path) for _, b in work]
                logprobs = self._step(cache, [b.running.path[-1] for _, b in work],
                                      [self.width + d - 1 for d in depths],  # right after each row's prefix
                                      [self.width - self.lengths[i] for i, _ in work],
                                      [self.lengths[i] + d - 1 for (i, _), d in zip(work, depths, strict=True)])
                fed: dict[int, list[tuple[_Branch, list[float]]]] = {}
                for (i, branch), lp in zip(work, logprobs, strict=True):
                    fed.setdefault(i, []).append((branch, lp))
                for i, pairs in fed.items():
                    self.rows[i].feed_pass(pairs)
                self.out.nodes += len(work)
        return [DfsResult([], False, 0) if row is None
                else row.result(timed_out and i in live) for i, row in enumerate(self.rows)]

    def _plan(self, live: list[int]) -> list[tuple[int, _Branch, _Branch | None]]:
        """This pass's nodes: every branch's next, then the free rows shared among the prompts (water-filling:
        the prompts with the fewest spare nodes first, each taking at most an even share of what is left)."""
        # Rows within reach: what the buffers hold, or what one growth gives with old and new within the budget.
        reach = max(self.room, self.max_rows - self.room)
        free = reach - sum(len(self.rows[i].branches) for i in live) if self.side_by_side else 0
        spare = {i: self.rows[i].spare() for i in live}
        extra = dict.fromkeys(live, 0)
        wanting = sorted((i for i in live if spare[i] > 0), key=lambda i: (spare[i], i))
        for n, i in enumerate(wanting):
            extra[i] = min(spare[i], free // (len(wanting) - n))
            free -= extra[i]
        return [(i, branch, donor) for i in live for branch, donor in self.rows[i].next_nodes(extra[i])]

    def _arrange(self, cache: Any, plan: list[tuple[int, _Branch, _Branch | None]]) -> list[tuple[int, _Branch]]:
        """Put this pass's branches in the cache's first rows: a branch keeps its row where it can, one whose row
        lies past the pass's rows moves into a free one, a new branch gets a copy of its donor's row (all copies
        read the rows as they were before the pass). The (prompt, branch) behind each row, in row order."""
        from arc_kit.solve.kv_cache import select_rows

        n = len(plan)
        order: list[tuple[int, _Branch] | None] = [None] * n
        for i, branch, donor in plan:
            if donor is None and branch.cache_row < n:
                order[branch.cache_row] = (i, branch)
        free = (r for r in range(n) if order[r] is None)
        sources = list(range(n))
        for i, branch, donor in plan:
            if donor is None and branch.cache_row < n:
                continue
            r = next(free)
            sources[r] = branch.cache_row if donor is None else donor.cache_row
            order[r] = (i, branch)
        for r, (_, branch) in enumerate(order):
            branch.cache_row = r
        reserve = 0
        if n > self.room:  # grow ahead (doubling), old and new buffers together within the budget (``_plan``)
            reserve = min(max(n, 2 * self.room), self.max_rows - self.room)
            self.room = reserve
        if reserve or sources != list(range(n)) or n != self._cache_rows(cache):
            select_rows(cache, sources, reserve)
        return order

    @staticmethod
    def _cache_rows(cache: Any) -> int:
        return cache.layers[0].keys.shape[0]  # the live rows (the buffers may hold more)

    def _prefill(self) -> tuple[Any, list[list[float]] | None]:
        """The prompts, left-padded, run into a fresh in-place cache in chunks (the deadline checked before each);
        ``CacheRejected`` when the model does not fill it or a layer cannot be written per row."""
        from arc_kit.solve.kv_cache import prefill_rowwise

        cache, logits = prefill_rowwise(self.model, self.prompts, capacity=self.capacity, device=self.device,
                                        chunk=self.prefill_chunk, stop=self._deadline_passed, rows=self.room)
        if logits is None:
            return cache, None
        self.out.forward_passes += 1
        return cache, self._logprobs(logits)

    def _step(self, cache: Any, tokens: list[int], columns: list[int], padding: list[int],
              positions: list[int]) -> list[list[float]]:
        """One batched forward pass: each row's next token at its own column (after ``padding`` columns before
        its prompt) and its own position."""
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
