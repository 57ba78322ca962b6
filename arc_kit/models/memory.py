"""How many tokens the solver and test-time training may put on the GPU at once: budgets from the memory a worker
sees free once the weights are loaded, and the model's shape.

Why: one fixed budget cannot fit every card. Qwen3-4B in float16 leaves ~7 GB of a 16 GB T4 free, in bfloat16 ~15
GB of a 24 GB L4, and an H100 has 70 GB to spare; a budget sized for the L4 runs out of memory on the T4 and
leaves most of the H100 idle. So ``solver.batch_tokens``, ``solver.score_token_budget`` and ``ttt.max_length``,
left unset, are fitted here to the card the worker runs on; a value the user sets is kept as it is. On a CPU the
unset budgets take the fixed figures of ``arc_kit.config.run`` (``CPU_*``).

The arithmetic (``docs/gpu-memory.md`` has the figures for a T4 and an L4):

- **what may be used**: the free memory (``torch.cuda.mem_get_info``, after the weights) less a headroom for the
  allocator's fragmentation and the CUDA libraries' workspaces (``HEADROOM_SHARE`` of it plus ``HEADROOM_BYTES``),
  less what test-time training keeps between tasks (its LoRA and the snapshot ``reset`` restores, float32);
- **decoding** (greedy and the depth-first search; ``solve/decoding.py``): a token of ``batch_tokens`` holds its
  KV cache (2 x layers x KV heads x head dim x the dtype's bytes) and, while its prompt is prefilled, one layer's
  activations (``ModelShape.activation_bytes``); plus the last position's logits of each row;
- **re-scoring** (teacher forcing; ``solve/rescoring.py``): a token of ``score_token_budget`` holds twice its KV
  (the prompts' cache and each row's copy of it), one layer's activations and its logits at the model's whole
  vocabulary in float32 (vocabulary x 4 bytes: the worst case keeps every position's logits);
- **test-time training** (``solve/ttt.py``; ``ttt.batch_size`` rows of ``max_length`` tokens a step): the adapter's
  weights, gradients and Adam moments (float32); per token, with activation checkpointing, each layer's input
  plus one layer's activations and their gradients being recomputed, without it every layer's; and the logits
  (the model's dtype, a float32 copy, its softmax and gradient: ``TRAIN_LOGITS_EXTRA_BYTES`` + the dtype's bytes,
  at the whole vocabulary: why a shrunk vocabulary, ``model.shrink_vocab``, matters most here).

Every figure is an estimate on the safe side; the decoders also split a batch that still runs out of memory.
Nothing here imports torch at module level (``free_bytes`` imports it inside).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from arc_kit.config.lora import LoraSettings
from arc_kit.config.run import (
    CPU_BATCH_TOKENS,
    CPU_SCORE_TOKEN_BUDGET,
    CPU_TTT_MAX_LENGTH,
    SolverSettings,
    TTTSettings,
)

log = logging.getLogger(__name__)

GIB = 1024**3
HEADROOM_SHARE = 0.10
"""Share of the free memory left unplanned: the caching allocator's fragmentation between phases of different
shapes (decoding, re-scoring, training)."""
HEADROOM_BYTES = GIB // 2
"""Also left unplanned: cuBLAS/cuDNN workspaces, the SDPA kernels' scratch, the Trainer's own buffers."""
CUDA_CONTEXT_BYTES = GIB // 2
"""What the CUDA context of a torch process takes before any tensor (used for the cards' table only: a worker
measures its free memory after it)."""
TRAIN_LOGITS_EXTRA_BYTES = 12
"""Per logit in training, besides the logits themselves: the loss's float32 copy, its log-softmax and the gradient."""
BATCH_TOKENS_STEP = 1024
SCORE_TOKENS_STEP = 512
TTT_LENGTH_STEP = 256
MIN_TOKENS = 512
"""No budget goes below this: a row longer than a batch's budget still runs alone, the budget only packs rows."""
TTT_TOO_SHORT = 2048
"""A fitted ``ttt.max_length`` below this leaves most ARC-AGI-2 tasks (median prompt ~2.8k tokens) rows of one or
two demonstration pairs or none: the log line says so and what would lengthen them."""

# What a LoRA target module maps from and to, in a decoder layer of the Llama/Qwen family.
_PROJECTIONS = {
    "q_proj": ("hidden", "q"), "k_proj": ("hidden", "kv"), "v_proj": ("hidden", "kv"), "o_proj": ("q", "hidden"),
    "gate_proj": ("hidden", "intermediate"), "up_proj": ("hidden", "intermediate"),
    "down_proj": ("intermediate", "hidden"),
}


@dataclass(frozen=True)
class ModelShape:
    """What the budgets need to know of a decoder-only transformer; ``dtype_bytes``: its weights' and activations'
    type (2 for bfloat16 and float16, 4 for float32)."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    dtype_bytes: int
    tied_embeddings: bool = True

    @property
    def kv_bytes(self) -> int:
        """The KV cache of one token: keys and values of every layer."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes

    @property
    def activation_bytes(self) -> int:
        """One token's live tensors inside one layer of a forward pass: the residual stream and its norm, q/k/v and
        the attention output, the MLP's gate, up and their product."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return (2 * self.hidden + 2 * q + 2 * kv + 3 * self.intermediate) * self.dtype_bytes

    @property
    def weight_bytes(self) -> int:
        """The weights (norms left out): embeddings (twice when the head is not tied), attention and MLP."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        layer = self.hidden * (q + 2 * kv) + q * self.hidden + 3 * self.hidden * self.intermediate
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return (self.layers * layer + embeddings) * self.dtype_bytes

    def lora_params(self, lora: LoraSettings) -> int:
        """Trainable parameters of ``lora`` on this model: rank x (in + out) per targeted projection and layer, and
        the embedding copies with ``train_embeddings`` (one when the head is tied to them)."""
        sizes = {"hidden": self.hidden, "q": self.heads * self.head_dim, "kv": self.kv_heads * self.head_dim,
                 "intermediate": self.intermediate}
        per_layer = sum(lora.r * (sizes[a] + sizes[b]) for name, (a, b) in _PROJECTIONS.items()
                        if name in lora.target_modules)
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2) if lora.train_embeddings else 0
        return self.layers * per_layer + embeddings

    def training_bytes_per_token(self, checkpointing: bool) -> int:
        """One token of a training row: the layers' activations (with checkpointing each layer's input is kept and
        one layer is recomputed at a time, with its gradients; without, every layer's are kept) and its logits."""
        one_layer = 3 * self.activation_bytes  # forward activations, their gradients, the recomputation's copies
        layers = self.layers * self.hidden * self.dtype_bytes + one_layer if checkpointing else \
            self.layers * one_layer
        return layers + self.vocab * (self.dtype_bytes + TRAIN_LOGITS_EXTRA_BYTES)

    def describe(self) -> str:
        return (f"{self.layers} layers, {self.kv_heads} KV heads x {self.head_dim}, vocabulary {self.vocab:,}, "
                f"{self.dtype_bytes}-byte weights")


def model_shape(model_config: Any, dtype_bytes: int) -> ModelShape:
    """The shape of a transformers model config (the text part of a multimodal one)."""
    c = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    heads = int(c.num_attention_heads)
    return ModelShape(
        layers=int(c.num_hidden_layers), hidden=int(c.hidden_size), intermediate=int(c.intermediate_size),
        heads=heads, kv_heads=int(getattr(c, "num_key_value_heads", None) or heads),
        head_dim=int(getattr(c, "head_dim", None) or c.hidden_size // heads), vocab=int(c.vocab_size),
        dtype_bytes=dtype_bytes, tied_embeddings=bool(getattr(c, "tie_word_embeddings", False)))


@dataclass(frozen=True)
class Card:
    """A GPU as a Kaggle notebook gets it: the memory CUDA reports, and whether it computes in bfloat16."""

    name: str
    total_bytes: int
    bf16: bool

    def free_after_weights(self, shape: ModelShape) -> int:
        """What a worker sees free once the CUDA context and ``shape``'s weights are in place."""
        return self.total_bytes - CUDA_CONTEXT_BYTES - shape.weight_bytes


CARDS = {
    "T4": Card("T4", 15_110 * 1024**2, bf16=False),  # 16 GB, 15,110 MiB as CUDA reports it (ECC on)
    "L4": Card("L4", 23_034 * 1024**2, bf16=True),  # 24 GB, 23,034 MiB as nvidia-smi reports it
}
"""Kaggle's notebook GPUs: T4 x2 (``NvidiaTeslaT4``) and the competition's L4 x4 (``NvidiaL4``)."""


@dataclass(frozen=True)
class Budgets:
    """Token budgets fitted to one GPU, and the figures they came from (for the log line and the benchmark)."""

    batch_tokens: int
    score_token_budget: int
    ttt_max_length: int
    usable_bytes: int
    decode_bytes_per_token: int
    score_bytes_per_token: int
    ttt_bytes_per_token: int
    ttt_adapter_bytes: int

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def fit_budgets(shape: ModelShape, free_bytes: int, *, ttt_lora: LoraSettings | None, ttt_batch_size: int = 1,
                ttt_checkpointing: bool = True, decode_rows: int = 8, ttt_length_cap: int | None = None) -> Budgets:
    """The budgets that fit ``free_bytes`` (free once the weights are loaded) for a model of ``shape``: a pure
    function of its arguments (see the module's docstring for the arithmetic).

    ``ttt_lora``: test-time training's adapter (None: no test-time training, nothing kept for it);
    ``decode_rows``: the most rows a decoding batch holds (their last-position logits); ``ttt_length_cap``: the
    longest TTT row worth fitting (the model's context)."""
    usable = max(0, int(free_bytes * (1 - HEADROOM_SHARE)) - HEADROOM_BYTES)
    adapter_params = shape.lora_params(ttt_lora) if ttt_lora is not None else 0
    kept = 8 * adapter_params  # the adapter (float32) and its snapshot, held between tasks
    training = 20 * adapter_params  # while training: also its gradients and the two Adam moments
    between_tasks = max(0, usable - kept)
    decode_per_token = shape.kv_bytes + shape.activation_bytes
    last_logits = decode_rows * shape.vocab * (shape.dtype_bytes + 4)
    batch_tokens = _tokens(between_tasks - last_logits, decode_per_token, BATCH_TOKENS_STEP)
    score_per_token = 2 * shape.kv_bytes + shape.activation_bytes + 4 * shape.vocab
    score_tokens = _tokens(between_tasks, score_per_token, SCORE_TOKENS_STEP)
    ttt_per_token = shape.training_bytes_per_token(ttt_checkpointing)
    ttt_length = _tokens(usable - training, ttt_per_token * max(1, ttt_batch_size), TTT_LENGTH_STEP)
    if ttt_length_cap is not None:
        ttt_length = min(ttt_length, max(MIN_TOKENS, ttt_length_cap))
    return Budgets(batch_tokens, score_tokens, ttt_length, usable, decode_per_token, score_per_token,
                   ttt_per_token, training)


def _tokens(room: int, per_token: int, step: int) -> int:
    """Whole ``step``s of tokens that ``room`` bytes hold, at least ``MIN_TOKENS``."""
    return max(MIN_TOKENS, (max(0, room) // max(1, per_token)) // step * step)


def card_budgets(card: Card, shape: ModelShape, ttt: TTTSettings | None = None,
                 solver: SolverSettings | None = None) -> Budgets:
    """The budgets a worker on ``card`` would choose for a model of ``shape`` (``shape.dtype_bytes`` should be the
    card's: 2 on a GPU): the figures of ``docs/gpu-memory.md`` and ``scripts/bench_gpu.py``."""
    ttt = ttt or TTTSettings()
    solver = solver or SolverSettings()
    return fit_budgets(shape, card.free_after_weights(shape), ttt_lora=ttt.lora if ttt.enabled else None,
                       ttt_batch_size=ttt.batch_size, ttt_checkpointing=ttt.gradient_checkpointing,
                       decode_rows=solver.batch_size, ttt_length_cap=solver.max_length)


def free_bytes(device: str) -> int | None:
    """The memory free on a CUDA ``device`` (every process's use counted); None on a CPU."""
    if not str(device).startswith("cuda"):
        return None
    import torch

    return int(torch.cuda.mem_get_info(torch.device(device))[0])


def budgets_for(model: Any, device: str, dtype: Any, solver: SolverSettings, ttt: TTTSettings,
                context: int | None = None) -> tuple[Budgets, ModelShape, int] | None:
    """``fit_budgets`` for ``model`` (weights of torch ``dtype``) on ``device`` as it is now, with the shape,
    and the free bytes it saw; None on a CPU. ``context``: the longest row the model takes (default
    ``solver.max_length``)."""
    free = free_bytes(device)
    if free is None:
        return None
    import torch

    shape = model_shape(model.config, torch.finfo(dtype).bits // 8)
    budgets = fit_budgets(shape, free, ttt_lora=ttt.lora if ttt.enabled else None, ttt_batch_size=ttt.batch_size,
                          ttt_checkpointing=ttt.gradient_checkpointing, decode_rows=solver.batch_size,
                          ttt_length_cap=context or solver.max_length)
    return budgets, shape, free


def fit_settings(solver: SolverSettings | None, ttt: TTTSettings, loaded: Any,
                 context: int | None = None) -> tuple[SolverSettings | None, TTTSettings]:
    """``solver`` and ``ttt`` with every budget left unset filled for the model ``loaded`` (a ``LoadedModel``)
    on its device: from ``fit_budgets`` on a GPU, the ``CPU_*`` figures on a CPU. Logs one INFO line saying which
    were chosen and why; settings the user gave are kept, and when none is unset nothing is logged.
    ``solver`` None: only ``ttt`` is fitted (a ``TaskAdapter`` made outside a solver). ``context``: the longest
    row the model takes (the solver's ``max_length`` capped by the model)."""
    current: dict[str, int | None] = {"ttt.max_length": ttt.max_length}
    if solver is not None:
        current = {"batch_tokens": solver.batch_tokens, "score_token_budget": solver.score_token_budget, **current}
    unset = [name for name, value in current.items() if value is None]
    if not unset:
        return solver, ttt
    fitted = budgets_for(loaded.model, loaded.device, loaded.dtype, solver or SolverSettings(), ttt, context)
    if fitted is None:
        chosen = {"batch_tokens": CPU_BATCH_TOKENS, "score_token_budget": CPU_SCORE_TOKEN_BUDGET,
                  "ttt.max_length": CPU_TTT_MAX_LENGTH}
        why = "on a CPU: the kit's fixed figures"
    else:
        budgets, shape, free = fitted
        chosen = {"batch_tokens": budgets.batch_tokens, "score_token_budget": budgets.score_token_budget,
                  "ttt.max_length": budgets.ttt_max_length}
        why = (f"{loaded.device}: {free / GIB:.1f} GiB free after the weights, {budgets.usable_bytes / GIB:.1f} GiB "
               f"planned for a model of {shape.describe()}: decoding {budgets.decode_bytes_per_token / 1024:.0f} KiB "
               f"a token, re-scoring {budgets.score_bytes_per_token / 1024:.0f} KiB, test-time training "
               f"{budgets.ttt_bytes_per_token / 1024:.0f} KiB + {budgets.ttt_adapter_bytes / GIB:.2f} GiB for its "
               "adapter")
        if "ttt.max_length" in unset and ttt.enabled and budgets.ttt_max_length < TTT_TOO_SHORT:
            log.warning(f"memory: test-time training rows fit only {budgets.ttt_max_length} tokens on "
                        f"{loaded.device}; most tasks will train on few demonstration pairs or none. A shrunk "
                        "vocabulary (model.shrink_vocab) or a lower ttt.lora.r frees the most")
    if solver is not None:
        solver = dataclasses.replace(solver, **{k: chosen[k] for k in unset if k != "ttt.max_length"})
    if "ttt.max_length" in unset:
        ttt = dataclasses.replace(ttt, max_length=chosen["ttt.max_length"])
    said = ", ".join(f"{name} {chosen[name]}" for name in unset)
    kept = ", ".join(f"{name} {value}" for name, value in current.items() if value is not None)
    log.info(f"memory: {said} ({why}){'; as set: ' + kept if kept else ''}")
    return solver, ttt


def decoding_budget(model: Any, device: str) -> int:
    """``batch_tokens`` for a decoder built outside a solver (the solver fits its settings once, ``fit_settings``):
    from the free memory on a GPU, ``CPU_BATCH_TOKENS`` on a CPU."""
    if not str(device).startswith("cuda"):
        return CPU_BATCH_TOKENS
    fitted = budgets_for(model, device, next(model.parameters()).dtype, SolverSettings(), TTTSettings(enabled=False))
    return fitted[0].batch_tokens if fitted is not None else CPU_BATCH_TOKENS
