"""Load a model offline, decode ARC prompts greedily in batches, and turn generations into two attempts.

The path per task: views (``arc_kit.augment``) -> prompt fitted to the context (``arc_kit.text``) -> batched greedy
decoding bounded by the largest answer the task allows -> parse -> invert the view -> vote -> attempt_1, attempt_2.

torch and transformers are imported inside functions: the runner imports this module in worker processes only
after it has set ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arc_kit.augment import View, views_for_task
from arc_kit.settings import InferenceConfig
from arc_kit.tasks import Grid, Task
from arc_kit.text import ParseError, answer_from_generation, check_tokenizer, fit_for_tokenizer, render

log = logging.getLogger(__name__)

END_MARKERS = ("<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>")


class ModelLoadError(RuntimeError):
    """The weights folder is missing, incomplete or unreadable; the message names the folder."""


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    device: str
    backend: str  # "transformers", "transformers+peft" or "unsloth"
    model_dir: Path


# ------------------------------------------------------------------------------------------------------------
# Loading


def _offline() -> None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("UNSLOTH_DISABLE_STATISTICS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_model(model_dir: str | Path, config: InferenceConfig | None = None) -> LoadedModel:
    """Load a merged model folder (config.json) or a LoRA adapter folder (adapter_config.json), never online."""
    _offline()
    config = config or InferenceConfig()
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"weights folder {model_dir} does not exist")
    is_adapter = (model_dir / "adapter_config.json").exists()
    if not is_adapter and not (model_dir / "config.json").exists():
        raise ModelLoadError(f"weights folder {model_dir} holds neither config.json nor adapter_config.json")

    import torch

    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" and config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    if device.startswith("cuda") and config.use_unsloth:
        loaded = _try_unsloth(model_dir, config)
        if loaded is not None:
            return loaded
    dtype = getattr(torch, config.dtype) if config.dtype else (torch.bfloat16 if device.startswith("cuda")
                                                                else torch.float32)
    try:
        if is_adapter:
            model, tokenizer = _load_adapter(model_dir, config, dtype)
            backend = "transformers+peft"
        else:
            from transformers import AutoModelForCausalLM

            tokenizer = _load_tokenizer(model_dir)
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, local_files_only=True)
            backend = "transformers"
    except ModelLoadError:
        raise
    except Exception as e:  # transformers raises OSError, ValueError, safetensors errors ... for a bad folder
        raise ModelLoadError(f"cannot load weights from {model_dir}: {type(e).__name__}: {e}") from e
    model.to(device).eval()
    check_tokenizer(tokenizer)
    return LoadedModel(model, tokenizer, device, backend, model_dir)


def _load_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _load_adapter(adapter_dir: Path, config: InferenceConfig, dtype: Any) -> tuple[Any, Any]:
    """Base model + adapter, merged so decoding runs at the base model's speed."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    recorded = json.loads((adapter_dir / "adapter_config.json").read_text()).get("base_model_name_or_path")
    candidates = [config.base_model, recorded]
    if recorded:
        candidates += [adapter_dir / recorded, adapter_dir.parent / Path(recorded).name]
    base = next((Path(c) for c in candidates if c and (Path(c) / "config.json").exists()), None)
    if base is None:
        raise ModelLoadError(
            f"adapter {adapter_dir}: base model {recorded!r} not found offline; set base_model to its folder"
        )
    has_tokenizer = any((adapter_dir / n).exists() for n in ("tokenizer.json", "tokenizer_config.json"))
    tokenizer = _load_tokenizer(adapter_dir if has_tokenizer else base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, local_files_only=True)
    model = PeftModel.from_pretrained(model, adapter_dir, local_files_only=True)
    return model.merge_and_unload(), tokenizer


def _try_unsloth(model_dir: Path, config: InferenceConfig) -> LoadedModel | None:
    """Unsloth's fast path on CUDA; any failure logs and returns None so transformers takes over."""
    try:
        from arc_kit.unsloth_backend import load_for_inference

        model, tokenizer = load_for_inference(model_dir, config.max_length, dtype=None)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        check_tokenizer(tokenizer)
        # Unsloth patches the forward; make sure our loop runs on it before trusting it with 12 hours.
        probe = tuple(tokenizer("Input:\n01\n", add_special_tokens=False)["input_ids"])
        GreedyDecoder(model, tokenizer, 2, "cuda").decode([DecodeRequest(0, probe, 2), DecodeRequest(1, probe[1:], 2)])
        return LoadedModel(model, tokenizer, "cuda", "unsloth", model_dir)
    except Exception as e:  # ImportError on boxes without it, anything else from its patching
        log.warning("Unsloth unavailable for %s (%s: %s); using transformers", model_dir, type(e).__name__, e)
        return None


def context_limit(loaded: LoadedModel, config: InferenceConfig) -> int:
    limit = getattr(loaded.model.config, "max_position_embeddings", None) or config.max_length
    return min(config.max_length, int(limit))


def end_token_ids(tokenizer: Any, model: Any = None) -> list[int]:
    """Every id that ends an answer: the tokenizer's eos, the chat end markers it knows, the model's eos."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    vocab = tokenizer.get_vocab()
    ids.update(vocab[m] for m in END_MARKERS if m in vocab)
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update([eos] if isinstance(eos, int) else (eos or []))
    return sorted(ids)


# ------------------------------------------------------------------------------------------------------------
# Batched greedy decoding


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
    timed_out: bool = False  # cut by the deadline before its end token or bound


@dataclass
class DecodeStats:
    tokens: int = 0  # generated tokens that count: each row until its end token or bound
    seconds: float = 0.0
    prefill_tokens: int = 0  # prompt tokens (padding included) run through the model
    prefill_seconds: float = 0.0
    skipped_batches: int = 0  # batches not started because their estimated prefill would cross the deadline

    def prefill_estimate(self, tokens: int) -> float | None:
        """Seconds a prefill of ``tokens`` should take, from what this decoder measured; None before any."""
        if self.prefill_tokens < 1 or self.prefill_seconds <= 0:
            return None
        return tokens * self.prefill_seconds / self.prefill_tokens

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


class GreedyDecoder:
    """Greedy decoding with the KV cache, prompts grouped by length, left padding, per-row bounds and end tokens.

    A hand-written loop rather than ``model.generate``: rows leave the batch as they finish (each has its own
    bound) and the deadline is checked every step. Greedy choices match ``generate`` on one prompt at a time
    (``scripts/bench_inference.py`` checks it).
    """

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 8, device: str = "cpu",
                 prefill_chunk: int = 2048):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = max(1, batch_size)
        self.device = device
        self.prefill_chunk = max(1, prefill_chunk)
        self.end_ids = end_token_ids(tokenizer, model)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.end_ids[0]
        self.stats = DecodeStats()

    def decode(self, requests: Sequence[DecodeRequest], stop_at: float | None = None) -> list[Generation]:
        """Generations in the order of ``requests``; ``stop_at`` (time.time()) cuts every row still running."""
        order = sorted(range(len(requests)), key=lambda i: (len(requests[i].prompt_ids), i))
        out: dict[int, Generation] = {}
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            width = len(requests[chunk[-1]].prompt_ids)  # sorted by length: the last is the widest
            if stop_at is not None and not self._can_start(len(chunk) * width, stop_at):
                for i in chunk:
                    out[i] = Generation(requests[i].key, [], finished=False, timed_out=True)
                continue
            for i, gen in zip(chunk, self._decode_batch([requests[i] for i in chunk], stop_at), strict=True):
                out[i] = gen
        return [out[i] for i in range(len(requests))]

    def _can_start(self, prefill_tokens: int, stop_at: float) -> bool:
        """Start no batch whose prefill, estimated from the speed measured so far, would cross ``stop_at``: a long
        prompt's prefill cannot be cut midway except between chunks, and a budget is a promise."""
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
                                position_ids=positions[:, start:end], past_key_values=cache, use_cache=True,
                                logits_to_keep=1).logits
        self.stats.prefill_tokens += ids.numel()
        self.stats.prefill_seconds += time.time() - began
        return logits

    def _decode_batch(self, batch: Sequence[DecodeRequest], stop_at: float | None) -> list[Generation]:
        """One left-padded batch: prefill, then one token a step for the rows still running.

        A row leaves the batch (and its KV cache rows are dropped) at its end token or its bound, so a 3x3 answer
        beside a 30x30 one costs 12 steps, not 930.
        """
        import torch
        from transformers import DynamicCache

        began = time.time()
        width = max(len(r.prompt_ids) for r in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, r in enumerate(batch):
            ids[row, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids, dtype=torch.long)
            mask[row, width - len(r.prompt_ids) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        bounds = [max(1, r.max_new_tokens) for r in batch]
        end = set(self.end_ids)
        tokens: list[list[int]] = [[] for _ in batch]
        finished = [False] * len(batch)
        timed_out = False
        rows = list(range(len(batch)))  # the request behind each row still in the tensors
        cache = DynamicCache(config=self.model.config)
        with torch.inference_mode():
            logits = self._prefill(ids, mask, positions, cache, stop_at)
            if logits is None:  # the deadline came between prefill chunks
                self.stats.seconds += time.time() - began
                return [Generation(r.key, [], False, timed_out=True) for r in batch]
            while True:
                step = logits[:, -1, :].argmax(-1).tolist()
                keep = []
                for k, row in enumerate(rows):
                    tokens[row].append(step[k])
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
                    index = torch.tensor(keep, device=mask.device)
                    cache.batch_select_indices(index)
                    mask, positions = mask[index], positions[index]
                    rows = [rows[k] for k in keep]
                    step = [step[k] for k in keep]
                mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
                positions = positions[:, -1:] + 1
                next_ids = torch.tensor(step, dtype=torch.long, device=mask.device)[:, None]
                logits = self.model(input_ids=next_ids, attention_mask=mask, position_ids=positions,
                                    past_key_values=cache, use_cache=True).logits
        self.stats.seconds += time.time() - began
        self.stats.tokens += sum(len(t) for t in tokens)
        return [
            Generation(r.key, tokens[row], finished[row],
                       timed_out and not finished[row] and len(tokens[row]) < bounds[row])
            for row, r in enumerate(batch)
        ]


def generate_one_by_one(model: Any, tokenizer: Any, requests: Sequence[DecodeRequest]) -> list[Generation]:
    """The reference: ``model.generate`` on one prompt at a time, greedy, same bound and end tokens."""
    import torch
    from transformers import GenerationConfig

    end_ids = end_token_ids(tokenizer, model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_ids[0]
    out = []
    device = next(model.parameters()).device
    for r in requests:
        ids = torch.tensor([r.prompt_ids], dtype=torch.long, device=device)
        gen_config = GenerationConfig(max_new_tokens=max(1, r.max_new_tokens), do_sample=False, num_beams=1,
                                      eos_token_id=end_ids, pad_token_id=pad_id, use_cache=True)
        with torch.inference_mode():
            seq = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=gen_config)
        tokens = seq[0, ids.shape[1] :].tolist()
        cut = next((k for k, t in enumerate(tokens) if t in set(end_ids)), None)
        out.append(Generation(r.key, tokens[: cut + 1] if cut is not None else tokens, cut is not None))
    return out


# ------------------------------------------------------------------------------------------------------------
# Tasks -> prompts -> attempts


@dataclass
class TaskResult:
    """What one task produced; ``attempts[i]`` is (attempt_1, attempt_2) for test input i, None = placeholder."""

    task_id: str
    attempts: list[tuple[Grid | None, Grid | None]] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    pairs_dropped: int = 0  # over all prompts of the task
    unparsed: int = 0  # generations that were not a grid
    timed_out: bool = False
    error: str | None = None

    @property
    def answered(self) -> int:
        return sum(1 for a1, a2 in self.attempts if a1 is not None or a2 is not None)


@dataclass(frozen=True)
class _PromptKey:
    task_id: str
    test_index: int
    view_index: int


def choose_attempts(plain: Grid | None, others: Sequence[Grid]) -> tuple[Grid | None, Grid | None]:
    """attempt_1: the plain view's answer; attempt_2: the most voted answer of the other views that differs.

    Ties go to the answer seen first. Without a plain answer the top two distinct voted answers are used.
    """
    counts = Counter(others)
    ranked = sorted(counts, key=lambda g: (-counts[g], others.index(g)))
    if plain is None:
        return (ranked[0] if ranked else None), (ranked[1] if len(ranked) > 1 else None)
    return plain, next((g for g in ranked if g != plain), None)


class ArcSolver:
    """Solves groups of tasks with one loaded model; the runner gives each worker one of these."""

    def __init__(self, loaded: LoadedModel, config: InferenceConfig):
        self.loaded = loaded
        self.config = config
        self.tokenizer = loaded.tokenizer
        self.max_length = context_limit(loaded, config)
        self.decoder = GreedyDecoder(loaded.model, loaded.tokenizer, config.batch_size, loaded.device,
                                     config.prefill_chunk_tokens)

    def views(self, task: Task) -> list[View]:
        return views_for_task(task, max(1, self.config.views), self.config.seed)

    def requests_for(self, task: Task) -> tuple[list[DecodeRequest], list[View], int]:
        """One prompt per (test input, view); returns them, the views, and how many train pairs were dropped."""
        views = self.views(task)
        requests, dropped = [], 0
        for v_index, view in enumerate(views):
            viewed = view.apply_task(task)
            for t_index, pair in enumerate(viewed.test):
                fitted = fit_for_tokenizer(self.tokenizer, viewed, t_index, self.max_length)
                dropped += fitted.dropped
                prompt = render(self.tokenizer, fitted.train, pair.input).prompt
                ids = tuple(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
                room = max(1, self.max_length - len(ids))
                requests.append(DecodeRequest(_PromptKey(task.task_id, t_index, v_index), ids,
                                              min(fitted.reserved_tokens, room)))
        return requests, views, dropped

    def solve(self, tasks: Sequence[Task], stop_at: float | None = None) -> list[TaskResult]:
        """Decode every prompt of ``tasks`` together; a failing group is retried task by task."""
        began = time.time()
        results: dict[str, TaskResult] = {}
        prepared: dict[str, tuple[list[DecodeRequest], list[View]]] = {}
        for task in tasks:
            try:
                requests, views, dropped = self.requests_for(task)
                prepared[task.task_id] = (requests, views)
                results[task.task_id] = TaskResult(task.task_id, pairs_dropped=dropped)
            except Exception as e:
                results[task.task_id] = TaskResult(task.task_id, error=f"prompt: {type(e).__name__}: {e}")
        all_requests = [r for requests, _ in prepared.values() for r in requests]
        try:
            generations = self.decoder.decode(all_requests, stop_at)
        except Exception as e:
            if len(prepared) > 1:
                by_id = {t.task_id: t for t in tasks}
                return [results[t.task_id] if t.task_id not in prepared else self.solve([by_id[t.task_id]], stop_at)[0]
                        for t in tasks]
            for tid in prepared:
                results[tid].error = f"decode: {type(e).__name__}: {e}"
                log.error("task %s: decoding failed: %s", tid, e)
            generations = []
        by_task: dict[str, list[Generation]] = {}
        for gen in generations:
            by_task.setdefault(gen.key.task_id, []).append(gen)
        elapsed = time.time() - began
        for task in tasks:
            result = results[task.task_id]
            result.seconds = elapsed
            if result.error is None:
                self._attempts(task, prepared[task.task_id][1], by_task.get(task.task_id, []), result)
        return [results[t.task_id] for t in tasks]

    def _attempts(self, task: Task, views: list[View], gens: list[Generation], result: TaskResult) -> None:
        result.tokens = sum(len(g.token_ids) for g in gens)
        # A generation cut by the deadline or cap is left out; a test input keeps its placeholder only when all of
        # its generations were cut, and every finished answer is kept.
        result.timed_out = any(g.timed_out for g in gens)
        plain: dict[int, Grid | None] = {}
        others: dict[int, list[Grid]] = {i: [] for i in range(len(task.test))}
        for gen in gens:
            key: _PromptKey = gen.key
            if gen.timed_out:
                continue
            text = self.tokenizer.decode(gen.token_ids, skip_special_tokens=False)
            try:
                grid = views[key.view_index].invert_grid(answer_from_generation(text))
            except (ParseError, ValueError, IndexError):
                result.unparsed += 1
                grid = None
            if key.view_index == 0 and views[0].is_identity:
                plain[key.test_index] = grid
            elif grid is not None:
                others[key.test_index].append(grid)
        result.attempts = [choose_attempts(plain.get(i), others[i]) for i in range(len(task.test))]


def load_solver(model_dir: str | Path, config: InferenceConfig) -> ArcSolver:
    return ArcSolver(load_model(model_dir, config), config)
