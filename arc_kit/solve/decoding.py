"""Batched greedy decoding with the KV cache: the kit's one greedy decoder (the kernel, the dry run, training's
exact-match check). Depth-first candidate search lives beside it in ``arc_kit.solve.dfs``; both take their KV cache
from ``arc_kit.solve.kv_cache`` (preallocated and written in place by default, transformers' ``DynamicCache`` as
the fallback).

Batches are bounded by tokens as well as rows (``solver.batch_tokens``). Left unset, the budget is fitted to the
GPU's free memory (``arc_kit.models.memory``): with Qwen3-4B a token costs its KV cache, 2 (K, V) x 36 layers x 8
KV heads x 128 dims x 2 bytes = 147 KB, and while its prompt is prefilled one layer's activations (~90 KB); the
last position's logits are kept per row only. On a 24 GB L4 (bf16, ~14.5 GB free after 8 GB of weights) that is
about 54k tokens, on a 16 GB T4 (fp16) about 22k: 8 prompts of 8k tokens (65k tokens) are split into batches.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from arc_kit.config.run import SolverSettings
from arc_kit.models.tokens import end_token_ids


@dataclass(frozen=True)
class DecodeRequest:
    key: Hashable
    prompt_ids: tuple[int, ...]
    max_new_tokens: int  # the largest answer this prompt allows, end tokens included


@dataclass
class Generation:
    key: Hashable
    token_ids: list[int]  # up to and including the end token
    finished: bool  # stopped at an end token
    timed_out: bool = False  # stopped by the deadline before its end token or bound
    nll: float = 0.0  # -sum of the chosen tokens' log-probabilities (softmax over the whole vocabulary)


@dataclass
class DecodeStats:
    tokens: int = 0  # generated tokens that count: each row until its end token or bound
    seconds: float = 0.0
    prefill_tokens: int = 0  # prompt tokens (padding included) run through the model
    prefill_seconds: float = 0.0
    skipped_batches: int = 0  # batches not started because their estimated prefill would cross the deadline
    oom_splits: int = 0  # batches split in half after running out of GPU memory

    def prefill_estimate(self, tokens: int) -> float | None:
        """Seconds a prefill of ``tokens`` should take, from what this decoder measured; None before any."""
        if self.prefill_tokens < 1 or self.prefill_seconds <= 0:
            return None
        return tokens * self.prefill_seconds / self.prefill_tokens

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def length_batches(sizes: Sequence[tuple[int, int]], *, batch_size: int, batch_tokens: int) -> list[list[int]]:
    """Indices of ``sizes`` ((prompt tokens, answer room) each), shortest prompt first, split into batches of at most
    ``batch_size`` rows and ``batch_tokens`` tokens (rows x (widest prompt + largest answer room)); a lone longer
    one runs alone. Sorting by length puts equal prompts side by side, so a batch of them needs no padding."""
    order = sorted(range(len(sizes)), key=lambda i: (sizes[i][0], i))
    batches: list[list[int]] = []
    current: list[int] = []
    room = 0
    for i in order:
        need = sizes[i][0] + sizes[i][1]
        if current and (len(current) == max(1, batch_size) or (len(current) + 1) * max(room, need) > batch_tokens):
            batches.append(current)
            current, room = [], 0
        current.append(i)
        room = max(room, need)
    if current:
        batches.append(current)
    return batches


class GreedyDecoder:
    """Greedy decoding with the KV cache, prompts grouped by length, left padding, per-row bounds and end tokens.

    A hand-written loop rather than ``model.generate``: rows leave the batch as they finish (each has its own
    bound) and the deadline is checked every step. Greedy choices match ``generate`` on one prompt at a time
    (``scripts/bench_inference.py`` checks it).
    """

    def __init__(self, model: Any, tokenizer: Any, *, device: str, batch_size: int, prefill_chunk_tokens: int,
                 batch_tokens: int, kv_cache: str):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = max(1, batch_size)
        self.batch_tokens = max(1, batch_tokens)
        self.device = device
        self.prefill_chunk = max(1, prefill_chunk_tokens)
        self.end_ids = end_token_ids(tokenizer, model)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.end_ids[0]
        self.kv_cache = kv_cache  # "inplace" or "dynamic"; becomes "dynamic" if the model refuses "inplace"
        self.stats = DecodeStats()
        self._cache_keyword: str | None = None

    @property
    def cache_keyword(self) -> str:
        """The forward's name for the KV cache (``arc_kit.solve.kv_cache.cache_keyword``), read once."""
        if self._cache_keyword is None:
            from arc_kit.solve.kv_cache import cache_keyword

            self._cache_keyword = cache_keyword(self.model)
        return self._cache_keyword

    @classmethod
    def for_config(cls, model: Any, tokenizer: Any, device: str, config: SolverSettings) -> GreedyDecoder:
        """The decoder the solver settings describe (batch size, batch tokens, prefill chunk, KV cache); unset batch
        tokens are fitted to the device's free memory (``models.memory.decoding_budget``; a solver fits its
        settings once and passes them set)."""
        from arc_kit.models.memory import decoding_budget

        batch_tokens = config.batch_tokens if config.batch_tokens is not None else decoding_budget(model, device)
        return cls(model, tokenizer, device=device, batch_size=config.batch_size,
                   prefill_chunk_tokens=config.prefill_chunk_tokens, batch_tokens=batch_tokens,
                   kv_cache=config.kv_cache)

    def decode(self, requests: Sequence[DecodeRequest], stop_at: float | None = None) -> list[Generation]:
        """Generations in the order of ``requests``; ``stop_at`` (time.time()) stops every row still running."""
        out: dict[int, Generation] = {}
        for chunk in self._batches(requests):
            width = len(requests[chunk[-1]].prompt_ids)  # sorted by length: the last is the widest
            if stop_at is not None and not self._can_start(len(chunk) * width, stop_at):
                for i in chunk:
                    out[i] = Generation(requests[i].key, [], finished=False, timed_out=True)
                continue
            for i, gen in zip(chunk, self._decode_split_on_oom([requests[i] for i in chunk], stop_at), strict=True):
                out[i] = gen
        return [out[i] for i in range(len(requests))]

    def _decode_split_on_oom(self, batch: Sequence[DecodeRequest], stop_at: float | None) -> list[Generation]:
        """Decode a batch; out of GPU memory, free the cache and decode each half, down to one row, before the
        error reaches the task (a batch estimate that was too hopeful must not cost its tasks their answers)."""
        import torch

        try:
            return self._decode_batch(batch, stop_at)
        except torch.OutOfMemoryError:
            if len(batch) == 1:
                raise
            self.stats.oom_splits += 1
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            half = len(batch) // 2
            return [*self._decode_split_on_oom(batch[:half], stop_at), *self._decode_split_on_oom(batch[half:], stop_at)]

    def _batches(self, requests: Sequence[DecodeRequest]) -> list[list[int]]:
        return length_batches([(len(r.prompt_ids), r.max_new_tokens) for r in requests], batch_size=self.batch_size,
                              batch_tokens=self.batch_tokens)

    def _can_start(self, prefill_tokens: int, stop_at: float) -> bool:
        """Start no batch whose prefill, estimated from the speed measured so far, would cross ``stop_at``: a long
        prompt's prefill cannot be stopped midway except between chunks, and a budget is a promise."""
        now = time.time()
        estimate = self.stats.prefill_estimate(prefill_tokens)
        if now >= stop_at or (estimate is not None and now + estimate > stop_at):
            self.stats.skipped_batches += now < stop_at
            return False
        return True

    def _prefill(self, ids: Any, mask: Any, positions: Any, cache: Any, stop_at: float | None) -> Any:
        """Run the prompts into ``cache`` in chunks of ``prefill_chunk`` columns, checking the deadline between
        chunks; the last position's logits, or None when the deadline came first."""
        began = time.time()
        logits = None
        width = ids.shape[1]
        for start in range(0, width, self.prefill_chunk):
            end = min(width, start + self.prefill_chunk)
            if start and stop_at is not None and time.time() >= stop_at:
                return None
            logits = self.model(input_ids=ids[:, start:end], attention_mask=mask[:, :end],
                                position_ids=positions[:, start:end], use_cache=True, **{self.cache_keyword: cache},
                                logits_to_keep=1).logits
        self.stats.prefill_tokens += ids.numel()
        self.stats.prefill_seconds += time.time() - began
        return logits

    def _decode_batch(self, batch: Sequence[DecodeRequest], stop_at: float | None) -> list[Generation]:
        """One batch with the configured KV cache. A model that refuses the in-place cache (raises, or keeps a
        cache of its own, as a patched forward may) decodes with ``DynamicCache`` from then on: a warning, not a
        lost batch."""
        from arc_kit.solve.kv_cache import run_with_fallback

        generations, self.kv_cache = run_with_fallback(
            self.kv_cache, lambda kind: self._decode_with(batch, stop_at, kind), self.model)
        return generations

    def _decode_with(self, batch: Sequence[DecodeRequest], stop_at: float | None, kv_cache: str) -> list[Generation]:
        """One left-padded batch: prefill, then one token a step for the rows still running.

        A row leaves the batch (and its KV cache rows are dropped) at its end token or its bound, so a 3x3 answer
        beside a 30x30 one costs 12 steps, not 930. Dropping beats keeping finished rows under the mask: moving
        the kept rows' live cache to the front of the buffers costs about one step's cache reads, once, while a
        kept row costs its share of every later step (tiny model, 8 rows of 4k, half finishing at step 8 of 32:
        0.38-0.59 s of decoding dropping them against 0.55-0.80 s running all 8 to the end).
        """
        import torch

        from arc_kit.solve.kv_cache import check_filled, new_cache

        began = time.time()
        width = max(len(r.prompt_ids) for r in batch)
        bounds = [max(1, r.max_new_tokens) for r in batch]
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        # The attention mask for every column the batch can reach, made once: a step passes a view of the live
        # columns (the cache sizes the 4-D mask from its live length, never from its capacity).
        full_mask = torch.ones((len(batch), width + max(bounds)), dtype=torch.long)
        for row, r in enumerate(batch):
            ids[row, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids, dtype=torch.long)
            full_mask[row, : width - len(r.prompt_ids)] = 0
        ids, full_mask = ids.to(self.device), full_mask.to(self.device)
        mask = full_mask[:, :width]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        end = set(self.end_ids)
        tokens: list[list[int]] = [[] for _ in batch]
        nll = [0.0] * len(batch)
        finished = [False] * len(batch)
        timed_out = False
        rows = list(range(len(batch)))  # the request behind each row still in the tensors
        fed = width  # columns run through the model so far, the same for every row
        cache = new_cache(kv_cache, self.model.config, width + max(bounds))
        with torch.inference_mode():
            logits = self._prefill(ids, mask, positions, cache, stop_at)
            if logits is None:  # the deadline came between prefill chunks
                self.stats.seconds += time.time() - began
                return [Generation(r.key, [], False, timed_out=True) for r in batch]
            if kv_cache == "inplace":
                check_filled(cache, width)
            while True:
                last = torch.log_softmax(logits[:, -1, :].float(), dim=-1)
                best = last.max(-1)
                step, step_nll = best.indices.tolist(), (-best.values).tolist()
                keep = []
                for k, row in enumerate(rows):
                    tokens[row].append(step[k])
                    nll[row] += step_nll[k]
                    if step[k] in end:
                        finished[row] = True
                    elif len(tokens[row]) < bounds[row]:
                        keep.append(k)
                if not keep:
                    break
                if stop_at is not None and time.time() >= stop_at:
                    timed_out = True
                    break
                if len(keep) < len(rows):
                    index = torch.tensor(keep, device=full_mask.device)
                    cache.batch_select_indices(index)
                    full_mask, positions = full_mask[index], positions[index]
                    rows = [rows[k] for k in keep]
                    step = [step[k] for k in keep]
                fed += 1
                mask = full_mask[:, :fed]
                positions = positions[:, -1:] + 1
                next_ids = torch.tensor(step, dtype=torch.long, device=full_mask.device)[:, None]
                logits = self.model(input_ids=next_ids, attention_mask=mask, position_ids=positions,
                                    use_cache=True, **{self.cache_keyword: cache}).logits
        self.stats.seconds += time.time() - began
        self.stats.tokens += sum(len(t) for t in tokens)
        return [
            Generation(r.key, tokens[row], finished[row],
                       timed_out and not finished[row] and len(tokens[row]) < bounds[row], nll[row])
            for row, r in enumerate(batch)
        ]
