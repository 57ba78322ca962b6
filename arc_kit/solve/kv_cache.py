"""The decoders' KV cache: buffers preallocated once and written in place, or transformers' ``DynamicCache``.

Why: ``DynamicCache`` grows every layer's keys and values by ``torch.cat`` at every step, so each generated token
copies the whole cache once more: memory traffic the size of the cache per step, which grows with the context.
``InPlaceLayer`` allocates ``[batch, kv heads, capacity, head dim]`` at the first update and writes each step's keys
and values into the next free columns; attention reads a view of the live prefix. ``scripts/bench_inference.py``
(CPU, batch 8): decode steps 1.1-1.4x faster than with ``DynamicCache`` at 1-2k prompt tokens, 1.4-1.8x at 4k and
2.3-3.7x at 8k, outputs identical.

Why a subclass of transformers' ``DynamicLayer`` rather than its ``StaticLayer`` or a hand-written cache:

- ``DynamicLayer`` measures its length from ``keys.shape[-2]`` and sizes the attention mask from it
  (``get_mask_sizes``: live length + query), so the mask covers the live tokens only. ``StaticLayer`` always reports
  its whole capacity: every step would attend over (and mask) the empty tail, and it cannot crop.
- Keeping ``keys``/``values`` as views of the live prefix leaves every inherited method correct: ``crop`` (the
  depth-first search's rewind) is ``DynamicLayer``'s own slice, ``get_seq_length`` and the mask sizes follow.
- Models call the layer through ``Cache.update`` like any transformers cache, so nothing in a model changes.

Only ``full_attention`` layers are replaced; other layer types (sliding window, linear attention) keep the layer
``DynamicCache`` gives them. A model that ignores or refuses the cache (Unsloth's patched forwards have their own
cache handling) is caught by ``check_filled`` or by the exception it raises; the decoders then fall back to
``DynamicCache`` (``kv_cache = "dynamic"``, also a setting). A bug here would show as that same warning, so
``tests/test_kv_cache.py`` checks that a transformers model keeps the in-place cache.

This module imports torch and transformers at its top: the decoders import it inside their functions (the runner
imports solver modules in worker processes only after it has set ``CUDA_VISIBLE_DEVICES``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from arc_kit.config.run import KV_CACHES

log = logging.getLogger(__name__)

T = TypeVar("T")


class CacheRejected(RuntimeError):
    """The model did not fill the cache it was given (it kept its own, or none), or refused it, or the cache has
    layers that cannot be treated row by row (``prefill_rowwise``)."""


def cache_keyword(model: Any) -> str:
    """The keyword under which ``model``'s forward takes its KV cache: ``"cache"`` where the forward names it
    (transformers >= 5.24, which warns on ``past_key_values`` and drops it in 5.40), else ``"past_key_values"``
    (older transformers, and Unsloth's patched forwards, which know only that name and would put ``cache=`` in
    ``**kwargs`` unused, silently decoding without the context).

    Read from the signature rather than a version number: a peft wrapper's forward takes ``**kwargs`` and passes
    them on, so its base model's forward decides; ``inspect.signature`` follows ``functools.wraps`` through
    transformers' deprecation decorator to the real parameters.
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        params = inspect.signature(inner.forward).parameters
    except (AttributeError, TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def new_cache(kind: str, config: Any, capacity: int) -> Any:
    """A fresh cache for ``config``'s model: ``"inplace"`` preallocates ``capacity`` tokens per row and layer,
    ``"dynamic"`` is transformers' ``DynamicCache``."""
    if kind not in KV_CACHES:
        raise ValueError(f"kv_cache must be one of {', '.join(KV_CACHES)}, got {kind!r}")
    cache = DynamicCache(config=config)
    if kind == "inplace":
        # DynamicCache(config=...) builds one layer per model layer of the right type; swap the full-attention ones.
        cache.layers = [InPlaceLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


def run_with_fallback(kind: str, run: Callable[[str], T], model: Any) -> tuple[T, str]:
    """``run(kind)`` and the kind it ran with. When ``kind`` is ``"inplace"`` and the run raises anything but
    running out of memory (``CacheRejected`` included), it warns and runs again with ``"dynamic"``: callers keep the
    returned kind, so a model that refuses the in-place cache pays for the refusal once."""
    if kind == "inplace":
        try:
            return run("inplace"), "inplace"
        except torch.OutOfMemoryError:
            raise
        except Exception as e:
            log.warning("%s refused the in-place KV cache (%s: %s); using DynamicCache", type(model).__name__,
                        type(e).__name__, e)
    return run("dynamic"), "dynamic"


def check_filled(cache: Any, length: int) -> None:
    """Raise ``CacheRejected`` unless ``cache`` holds ``length`` tokens after a prefill of that many: a model that
    keeps its own cache would otherwise decode every later token without its context, silently."""
    held = cache.get_seq_length()
    if int(held) != length:
        raise CacheRejected(f"the model left {int(held)} tokens in the cache after a prefill of {length}")


def supports_rowwise(cache: Any) -> bool:
    """Whether every layer of ``cache`` is an ``InPlaceLayer``, so each row can be cropped on its own
    (``prepare_rowwise_step``); a sliding-window or linear-attention layer cannot."""
    return bool(cache.layers) and all(isinstance(layer, InPlaceLayer) for layer in cache.layers)


def prepare_rowwise_step(cache: Any, columns: list[int]) -> int:
    """Set up the next one-token step of a batch whose rows sit at different depths: row r's token is written at
    column ``columns[r]`` (the row's own crop: whatever it held from there on belonged to a branch it has left),
    and every layer's live view becomes the widest row's columns. Returns the step's width (columns the
    attention mask must cover, ``max(columns) + 1``); the caller's 2-D mask hides, per row, the columns past its
    own and the padding before its prompt. When every row writes the same column this is a plain crop (or
    extension) of the live view and the write is the usual append.

    Why a row-wise write rather than ``crop``: ``crop`` truncates every row to one length, so rows of a lock-step
    search would all have to backtrack together.
    """
    width = max(columns) + 1
    aligned = min(columns) == width - 1
    where = None if aligned else torch.tensor(columns, dtype=torch.long)
    for layer in cache.layers:
        rows = layer.keys.shape[0]
        layer.keys = layer.key_buffer[:rows, :, : width - 1]
        layer.values = layer.value_buffer[:rows, :, : width - 1]
        layer.write_columns = None if where is None else where.to(layer.key_buffer.device)
    return width


def left_padded(prompts: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """(ids, attention mask, position ids, whether any row is padded) of ``prompts`` left-padded to the longest:
    every prompt ends in the last column, each row's positions count from its own first token."""
    width = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), width), dtype=torch.long)
    mask = torch.ones((len(prompts), width), dtype=torch.long)
    for r, prompt in enumerate(prompts):
        ids[r, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
        mask[r, : width - len(prompt)] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions, any(len(p) != width for p in prompts)


def prefill_rowwise(model: Any, prompts: Sequence[Sequence[int]], *, capacity: int, device: str, chunk: int,
                    stop: Callable[[], bool]) -> tuple[Any, torch.Tensor | None]:
    """``prompts`` left-padded and run into a fresh in-place cache of ``capacity`` tokens a row, ``chunk`` columns
    at a time (``stop()`` is asked before each chunk; True returns no logits); the cache and the last position's
    logits. For the callers that then treat rows apart (``prepare_rowwise_step``, ``copy_rows``): raises
    ``CacheRejected`` when a layer of the cache is not in place (sliding window, linear attention) or the model
    refuses the cache or leaves it unfilled, so they can fall back; out of memory is raised as it is."""
    ids, mask, positions, padded = left_padded(prompts)
    width = ids.shape[1]
    ids, mask, positions = ids.to(device), mask.to(device), positions.to(device)
    cache = new_cache("inplace", model.config, capacity)
    if not supports_rowwise(cache):
        raise CacheRejected("the model's cache has layers that cannot be written or copied per row")
    keyword = cache_keyword(model)
    logits = None
    try:
        for start in range(0, width, max(1, chunk)):
            if stop():
                return cache, None
            end = min(width, start + max(1, chunk))
            kwargs = {"attention_mask": mask[:, :end]} if padded else {}
            logits = model(input_ids=ids[:, start:end], position_ids=positions[:, start:end], use_cache=True,
                           logits_to_keep=1, **kwargs, **{keyword: cache}).logits
        check_filled(cache, width)
    except (torch.OutOfMemoryError, CacheRejected):
        raise
    except Exception as e:  # a patched forward that refuses the cache
        raise CacheRejected(f"{type(e).__name__}: {e}") from e
    return cache, logits


def copy_rows(cache: Any, index: torch.Tensor, capacity: int) -> Any:
    """A new in-place cache of ``len(index)`` rows, row r holding a copy of ``cache``'s row ``index[r]`` (rows may
    repeat), with room for ``capacity`` tokens: several continuations of one prefilled prompt, each in its own
    row, without running the prompt again. ``cache`` must be ``supports_rowwise`` (every layer in place)."""
    copy = DynamicCache()
    copy.layers = []
    for layer in cache.layers:
        fresh = InPlaceLayer(capacity)
        fresh.update(layer.keys.index_select(0, index), layer.values.index_select(0, index))
        copy.layers.append(fresh)
    return copy


class InPlaceLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values live in buffers allocated once: ``update`` copies the new
    columns in place and ``keys``/``values`` are views of the live prefix ``[:rows, :, :length]``.

    The buffers grow (doubling, copied once) only if a caller writes past ``capacity``; the decoders size it to
    prompt + largest answer, so in the kit they never do.
    """

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = max(1, int(capacity))
        self.key_buffer: torch.Tensor | None = None
        self.value_buffer: torch.Tensor | None = None
        self.write_columns: torch.Tensor | None = None  # per-row columns of the next one-token step (lock-step)

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        rows, heads = key_states.shape[:2]
        room = max(self.capacity, key_states.shape[-2])
        # Zeros, not uninitialised memory: in a lock-step search a row's attention spans columns it never wrote
        # (another row went deeper). They are masked, but a masked score still passes through the softmax, and
        # garbage bits could be inf or NaN there (inf + -inf = NaN); zeros are harmless. Once per batch.
        self.key_buffer = key_states.new_zeros((rows, heads, room, key_states.shape[-1]))
        self.value_buffer = value_states.new_zeros((rows, heads, room, value_states.shape[-1]))
        self.keys, self.values = self.key_buffer[:, :, :0], self.value_buffer[:, :, :0]
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if self.write_columns is not None:
            return self._update_rowwise(key_states, value_states)
        start = self.keys.shape[-2]
        end = start + key_states.shape[-2]
        if end > self.key_buffer.shape[-2]:
            self._grow(end)
        rows = self.keys.shape[0]
        self.key_buffer[:rows, :, start:end].copy_(key_states)
        self.value_buffer[:rows, :, start:end].copy_(value_states)
        self.keys = self.key_buffer[:rows, :, :end]
        self.values = self.value_buffer[:rows, :, :end]
        return self.keys, self.values

    def _update_rowwise(self, key_states: torch.Tensor, value_states: torch.Tensor) -> tuple[torch.Tensor,
                                                                                            torch.Tensor]:
        """One token per row, row r's written at column ``write_columns[r]``; the live view grows by one column
        (``prepare_rowwise_step`` set it to the widest row's column), the attention mask hides the rest."""
        rows = self.keys.shape[0]
        if key_states.shape[-2] != 1 or len(self.write_columns) != rows:
            raise ValueError(f"a row-wise step takes one token for each of the {rows} rows, got "
                             f"{tuple(key_states.shape)} for {len(self.write_columns)} columns")
        end = self.keys.shape[-2] + 1
        if end > self.key_buffer.shape[-2]:
            self._grow(end)
        index = torch.arange(rows, device=self.key_buffer.device)
        self.key_buffer[index, :, self.write_columns] = key_states[:, :, 0]
        self.value_buffer[index, :, self.write_columns] = value_states[:, :, 0]
        self.keys = self.key_buffer[:rows, :, :end]
        self.values = self.value_buffer[:rows, :, :end]
        return self.keys, self.values

    def _grow(self, needed: int) -> None:
        room = max(needed, 2 * self.key_buffer.shape[-2])
        length = self.keys.shape[-2]
        for name in ("key_buffer", "value_buffer"):
            old = getattr(self, name)
            new = old.new_empty((*old.shape[:2], room, old.shape[-1]))
            new[:, :, :length].copy_(old[:, :, :length])
            setattr(self, name, new)
        rows = self.keys.shape[0]
        self.keys = self.key_buffer[:rows, :, :length]
        self.values = self.value_buffer[:rows, :, :length]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the rows ``indices``, moved to the front of the buffers: only the live prefix is copied (once,
        through a temporary of the kept rows), never the empty tail, and the buffers stay where they are."""
        if not self.is_initialized:
            return
        length = self.keys.shape[-2]
        kept = len(indices)
        for buffer in (self.key_buffer, self.value_buffer):
            buffer[:kept, :, :length].copy_(buffer[:, :, :length].index_select(0, indices.to(buffer.device)))
        self.keys = self.key_buffer[:kept, :, :length]
        self.values = self.value_buffer[:kept, :, :length]

    def batch_repeat_interleave(self, repeats: int) -> None:
        raise NotImplementedError("InPlaceLayer is sized for its batch; beam search is not what it is for")

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        raise NotImplementedError("InPlaceLayer is sized for its batch; beam search is not what it is for")

    def reset(self) -> None:
        self.key_buffer = self.value_buffer = self.write_columns = None
        super().reset()

