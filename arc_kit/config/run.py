"""Every setting of a run, with its one default: the kernel, ``arc-kit dry-run``, ``arc-kit kernel build`` and the
demo all read these dataclasses, and the CLIs are generated from them (``arc_kit.cli.flags``).

Three groups, each a flat dataclass so ``transformers.HfArgumentParser`` can turn it into flags:

- ``RunSettings``: how a run spends its time (budget, margin, per-task cap, workers);
- ``SolverConfig``: how the model is loaded, how candidates are found (greedy or depth-first search) and chosen;
- ``TTTConfig``: per-task test-time training (a fresh LoRA on each task's demonstration pairs);
- ``KernelRuntime``: what only the Kaggle kernel needs (competition, attached sources, the quick pass).

``kernel build`` writes all three into the kernel's code as one dict literal (``KernelPlan.to_dict``); the kernel
reads it back with ``KernelPlan.from_dict``, which refuses unknown keys, so a setting cannot silently drift.
This module imports nothing heavy: the kernel entry and the workers import it before torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arc_kit import COMPETITION_SLUG


class SettingsError(ValueError):
    """A setting has a value that cannot work; the message names the field."""


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class RunSettings:
    """How a run spends its time; the 12 h Kaggle limit is the default budget."""

    budget_seconds: float = field(default=12 * 3600.0, metadata=_help("seconds for the whole run (Kaggle: 12 h)"))
    margin_seconds: float | None = field(
        default=None, metadata=_help("seconds kept free before the budget ends (default: 5%% of it, at most 900)"))
    task_cap_seconds: float = field(
        default=1200.0, metadata=_help("seconds one group of tasks may decode before it keeps its placeholders"))
    workers: int | None = field(
        default=None, metadata=_help("worker processes (default: one per visible GPU, one on CPU)"))
    quick_first: bool = field(default=True, metadata=_help(
        "phase 1: plain greedy over every task first, so each holds a real answer early; phase 2: the full "
        "solver task by task, each result replacing the quick one (skipped when the solver is plain greedy)"))

    @property
    def margin(self) -> float:
        return self.margin_seconds if self.margin_seconds is not None else min(900.0, 0.05 * self.budget_seconds)

    @property
    def deadline_offset(self) -> float:
        """Seconds after the start at which no new work begins."""
        return self.budget_seconds - self.margin

    def check(self) -> None:
        if not self.budget_seconds > 0:
            raise SettingsError(f"budget_seconds must be > 0, got {self.budget_seconds}")
        if self.margin_seconds is not None and not 0 <= self.margin_seconds < self.budget_seconds:
            raise SettingsError(f"margin_seconds must be >= 0 and < budget_seconds ({self.budget_seconds}), "
                                f"got {self.margin_seconds}")
        if not self.task_cap_seconds > 0:
            raise SettingsError(f"task_cap_seconds must be > 0, got {self.task_cap_seconds}")
        if self.workers is not None and self.workers < 1:
            raise SettingsError(f"workers must be >= 1 (or unset), got {self.workers}")


SOLVER_MODES = ("greedy", "dfs")
SELECTION_FORMULAS = ("nvarc", "poe", "architects", "vote")  # arc_kit.solve.selection.FORMULAS (a test checks)
KV_CACHES = ("inplace", "dynamic")  # arc_kit.solve.kv_cache.new_cache


@dataclass
class SolverConfig:
    """How to load the model, find candidates and choose two attempts; one setting each, kernel and dry run alike.

    The defaults follow NVARC (1st, ARC Prize 2025): depth-first search over 8 views, candidates re-scored under
    8 shared augmented views by ``count - mean NLL``. ``mode = "greedy"`` with ``scoring_views = 0`` is plain
    greedy decoding with attempt_2 voted over the views.
    """

    mode: str = field(default="dfs", metadata=_help(
        "greedy: one completion per view; dfs: every completion at least min_probability likely"))
    views: int = field(default=8, metadata=_help(
        "views per test input (the first is the task as given); candidates are pooled over them"))
    colour_views: bool = field(default=True, metadata=_help(
        "views and scoring views permute colours (0 kept) besides D8 and pair order; off: geometric views only"))
    min_probability: float = field(default=0.1, metadata=_help(
        "dfs: keep completions whose probability is at least this (the ARChitects used 0.17, NVARC 0.2)"))
    max_candidates_per_view: int = field(default=8, metadata=_help("dfs: stop a view's search after this many"))
    scoring_views: int = field(default=8, metadata=_help(
        "re-score every distinct candidate under this many augmented views (0: no re-scoring, vote)"))
    formula: str = field(default="nvarc", metadata=_help(
        f"how candidates are ranked: {', '.join(SELECTION_FORMULAS)} (arc_kit/solve/selection.py)"))
    max_length: int = field(default=8192, metadata=_help(
        "context for prompt + answer; capped by the model's max_position_embeddings"))
    batch_size: int = field(default=8, metadata=_help("greedy: most prompts decoded together"))
    batch_tokens: int = field(default=32768, metadata=_help(
        "greedy: most tokens (rows x (prompt + answer room)) in one batch; see solve/decoding.py for the memory "
        "arithmetic"))
    score_token_budget: int = field(default=16384, metadata=_help(
        "re-scoring: most tokens in one teacher-forced batch"))
    seed: int = field(default=0, metadata=_help("chooses the views (same seed, same views, in any process)"))
    use_unsloth: bool = field(default=True, metadata=_help(
        "on CUDA only; falls back to transformers when Unsloth is missing or fails"))
    base_model: str | None = field(default=None, metadata=_help(
        "base weights folder for a LoRA adapter whose recorded base is not here"))
    device: str | None = field(default=None, metadata=_help("cuda or cpu (default: cuda when available)"))
    dtype: str | None = field(default=None, metadata=_help("default: bfloat16 on cuda, float32 on cpu"))
    cpu_threads: int | None = field(default=1, metadata=_help(
        "torch threads on cpu (unset: torch's default); small models decode faster on one thread"))
    prefill_chunk_tokens: int = field(default=2048, metadata=_help(
        "a long prompt is prefilled in chunks of this many tokens, the deadline checked between chunks"))
    kv_cache: str = field(default="inplace", metadata=_help(
        "inplace: KV buffers preallocated per batch and written in place (arc_kit/solve/kv_cache.py); dynamic: "
        "transformers' DynamicCache, grown every step. A model that refuses inplace falls back to dynamic"))

    def check(self) -> None:
        for name in ("max_length", "batch_size", "views", "prefill_chunk_tokens", "max_candidates_per_view",
                     "batch_tokens", "score_token_budget"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.scoring_views < 0:
            raise SettingsError(f"scoring_views must be >= 0, got {self.scoring_views}")
        if self.mode not in SOLVER_MODES:
            raise SettingsError(f"mode must be one of {', '.join(SOLVER_MODES)}, got {self.mode!r}")
        if not 0 < self.min_probability <= 1:
            raise SettingsError(f"min_probability must be in (0, 1], got {self.min_probability}")
        if self.kv_cache not in KV_CACHES:
            raise SettingsError(f"kv_cache must be one of {', '.join(KV_CACHES)}, got {self.kv_cache!r}")
        if self.formula not in SELECTION_FORMULAS:
            raise SettingsError(f"formula must be one of {', '.join(SELECTION_FORMULAS)}, got {self.formula!r}")
        if self.cpu_threads is not None and self.cpu_threads < 0:
            raise SettingsError(f"cpu_threads must be >= 0, got {self.cpu_threads}")
        if self.dtype is not None and self.dtype not in ("bfloat16", "float16", "float32"):
            raise SettingsError(f"dtype must be bfloat16, float16 or float32, got {self.dtype!r}")


LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class TTTConfig:
    """Per-task test-time training settings; the defaults follow NVARC (1st, ARC Prize 2025) except where noted.

    Flat fields of simple types only, so they become CLI flags (prefixed ``--ttt-``: ``--ttt-learning-rate``).
    """

    enabled: bool = field(default=True, metadata=_help("train a fresh LoRA on each task's demonstration pairs"))
    lora_rank: int = field(default=32, metadata=_help(
        "LoRA rank (NVARC used 256 on Qwen3-4B; 32 as the Product-of-Experts paper, cheaper per task)"))
    lora_alpha: int = field(default=32, metadata=_help("LoRA alpha (NVARC: 32)"))
    lora_dropout: float = field(default=0.0, metadata=_help("LoRA dropout (NVARC: 0)"))
    use_rslora: bool = field(default=True, metadata=_help(
        "rsLoRA: scale by alpha/sqrt(rank) rather than alpha/rank, so a large rank still learns"))
    target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS), metadata=_help(
        "projection names that get a LoRA (those present in the model)"))
    train_embeddings: bool = field(default=False, metadata=_help(
        "also train embed_tokens and lm_head as full copies (NVARC: on); off by default: two vocab-sized "
        "matrices per task cost memory and time on a small GPU"))
    colour_views: bool = field(default=True, metadata=_help(
        "training rows permute colours (0 kept) besides D8 and demo order (NVARC: on); off for rules tied to "
        "particular colours, which a model then learns as weights"))
    max_samples: int = field(default=128, metadata=_help(
        "training rows per task (NVARC: 8 D8 views x 16 colour permutations = 128)"))
    epochs: int = field(default=1, metadata=_help("passes over the task's rows"))
    batch_size: int = field(default=1, metadata=_help("rows per optimiser step"))
    learning_rate: float = field(default=5e-5, metadata=_help("peak learning rate"))
    warmup_ratio: float = field(default=0.1, metadata=_help("share of the steps spent warming up linearly"))
    lr_scheduler: str = field(default="cosine", metadata=_help("transformers scheduler name after the warmup"))
    max_grad_norm: float = field(default=1.0, metadata=_help("gradient clipping (0: none)"))
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay"))
    optim: str = field(default="adamw_torch", metadata=_help("transformers optimiser name (AdamW)"))
    seed: int = field(default=0, metadata=_help(
        "chooses the LoRA's initial weights, the views and the row order (same seed, same training)"))
    max_length: int = field(default=8192, metadata=_help(
        "context for one training row; demonstration pairs are dropped (largest first) to fit"))
    gradient_checkpointing: bool = field(default=True, metadata=_help(
        "recompute activations in the backward pass (CUDA only; CPU runs never checkpoint)"))
    time_share: float = field(default=0.5, metadata=_help(
        "the most of a task's time training may take; the rest is the solver's (search and re-scoring)"))

    def check(self) -> None:
        for name in ("lora_rank", "max_samples", "epochs", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lora_alpha > 0:
            raise SettingsError(f"lora_alpha must be > 0, got {self.lora_alpha}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise SettingsError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not self.learning_rate > 0:
            raise SettingsError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise SettingsError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.max_grad_norm < 0 or self.weight_decay < 0:
            raise SettingsError(f"max_grad_norm and weight_decay must be >= 0, got {self.max_grad_norm} and "
                           f"{self.weight_decay}")
        if not 0.0 < self.time_share < 1.0:
            raise SettingsError(f"time_share must be in (0, 1), got {self.time_share}")
        if not self.target_modules:
            raise SettingsError("target_modules must name at least one projection")


@dataclass
class KernelRuntime:
    """What only the Kaggle kernel needs: the competition, the attached sources it looks for, the quick pass."""

    competition: str = field(default=COMPETITION_SLUG, metadata=_help("competition slug"))
    weights_dataset: str | None = field(default=None, metadata=_help("owner/slug of the weights dataset"))
    weights_model: str | None = field(default=None, metadata=_help(
        "owner/model/framework/variation/N of the weights as a Kaggle Model"))
    wheelhouse_dataset: str | None = field(default=None, metadata=_help("owner/slug of the wheelhouse dataset"))
    model_dir: str | None = field(default=None, metadata=_help(
        "weights folder inside the kernel (default: found from the attached source, else searched)"))
    challenges: str | None = field(default=None, metadata=_help(
        "challenges file inside the kernel (default: the competition's test file)"))
    quick_tasks: int = field(default=8, metadata=_help(
        "interactive (not rerun) kernel sessions decode only this many tasks, shortest first; 0 = all"))

    def check(self) -> None:
        if not self.competition:
            raise SettingsError("competition must be a competition slug")
        if self.quick_tasks < 0:
            raise SettingsError(f"quick_tasks must be >= 0, got {self.quick_tasks}")


@dataclass
class KernelPlan:
    """The three groups as the kernel receives them (the ``KERNEL_SETTINGS`` literal)."""

    kernel: KernelRuntime = field(default_factory=KernelRuntime)
    run: RunSettings = field(default_factory=RunSettings)
    solver: SolverConfig = field(default_factory=SolverConfig)
    ttt: TTTConfig = field(default_factory=TTTConfig)

    def check(self) -> None:
        self.kernel.check()
        self.run.check()
        self.solver.check()
        self.ttt.check()

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in _GROUPS}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> KernelPlan:
        """Read a settings literal back; unknown groups or keys are an error naming them."""
        if not isinstance(values, dict):
            raise SettingsError(f"kernel settings must be a dict, got {type(values).__name__}")
        unknown = set(values) - set(_GROUPS)
        if unknown:
            raise SettingsError(f"unknown kernel settings group(s): {', '.join(sorted(unknown))}")
        plan = cls(**{name: build(group, values.get(name) or {}, name) for name, group in _GROUPS.items()})
        plan.check()
        return plan


# KernelPlan's fields and their classes (its annotations are strings under ``from __future__ import annotations``).
_GROUPS: dict[str, type] = {"kernel": KernelRuntime, "run": RunSettings, "solver": SolverConfig, "ttt": TTTConfig}


def build(cls: type, values: dict[str, Any], where: str = "") -> Any:
    """``cls(**values)``, with unknown keys named instead of a TypeError."""
    if not isinstance(values, dict):
        raise SettingsError(f"{where or cls.__name__} must be a dict, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = set(values) - known
    if unknown:
        raise SettingsError(f"unknown setting(s) in {where or cls.__name__}: {', '.join(sorted(unknown))}")
    return cls(**values)


def fields_of(instance: Any, cls: type) -> dict[str, Any]:
    """The values of ``cls``'s fields taken from ``instance`` (an argparse Namespace or another dataclass)."""
    return {f.name: getattr(instance, f.name) for f in dataclasses.fields(cls) if f.init}


def load_plan(path: Path) -> KernelPlan:
    """A settings TOML: ``[kernel]``, ``[run]`` and ``[solver]`` tables with any of their fields (the rest keep
    their defaults); the same shape as the kernel's ``KERNEL_SETTINGS``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SettingsError(f"settings file {path}: {e}") from None
    try:
        return KernelPlan.from_dict(values)
    except (SettingsError, TypeError) as e:
        raise SettingsError(f"settings file {path}: {e}") from None
