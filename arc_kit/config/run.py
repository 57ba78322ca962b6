"""Every setting of a run, with its one default: the kernel, ``arc-kit dry-run``, ``arc-kit kernel build`` and the
demo all read these dataclasses, and the commands' flags are generated from them (``arc_kit.cli.flags``).

Four tables, ``SubmissionConfig``'s fields:

- ``[run]`` ``RunSettings``: how a run spends its time (budget, margin, per-task cap, workers);
- ``[solver]`` ``SolverSettings``: how the model is loaded, how candidates are found (greedy or depth-first search)
  and chosen;
- ``[ttt]`` ``TTTSettings``: per-task test-time training (a fresh LoRA on each task's demonstration pairs);
- ``[kernel]`` ``KernelSettings``: what only the Kaggle kernel needs (competition, attached sources, quick pass).

``kernel build`` writes the config into the kernel's code as one dict literal (``SubmissionConfig.to_dict``); the kernel
reads it back with ``SubmissionConfig.from_dict``, which refuses unknown keys, so a setting cannot silently drift. This
module imports nothing heavy: the kernel entry and the workers import it before torch.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from arc_kit import COMPETITION_SLUG
from arc_kit.config.lora import LoraSettings
from arc_kit.config.schema import Settings, SettingsError, field_path, from_dict, load, setting

KAGGLE_SESSION_SECONDS = 12 * 3600.0
"""How long Kaggle lets a notebook session (and a competition rerun) run: every kernel kind's default budget."""
BUDGET_HELP = "seconds for the whole run (Kaggle: 12 h)"
WHEELHOUSE_HELP = "owner/slug of the wheelhouse dataset"


@dataclass
class RunSettings(Settings):
    """How a run spends its time; the 12 h Kaggle limit is the default budget."""

    budget_seconds: float = setting(KAGGLE_SESSION_SECONDS, help=BUDGET_HELP, gt=0)
    margin_seconds: float | None = setting(
        None, help="seconds kept free before the budget ends (unset: 5% of it, at most 900)", ge=0)
    task_cap_seconds: float = setting(
        1200.0, help="seconds one group of tasks may decode before it keeps its placeholders", gt=0)
    workers: int | None = setting(None, help="worker processes (default: one per visible GPU, one on CPU)", ge=1)
    quick_first: bool = setting(True, help=(
        "phase 1: plain greedy over every task first, so each holds a real answer early; phase 2: the full "
        "solver task by task, each result replacing the quick one (skipped when the solver is plain greedy)"))
    spare_time: bool = setting(True, help=(
        "phase 3: once every task holds its full-solver answer, spend the time left revisiting the least "
        "confident tasks first (smallest selection margin) with solver.spare_views more views at "
        "solver.spare_min_probability; a revisit's candidates are pooled with the first search's, and the answer "
        "changes only where the pool ranks another grid higher"))

    @property
    def margin(self) -> float:
        return self.margin_seconds if self.margin_seconds is not None else min(900.0, 0.05 * self.budget_seconds)

    @property
    def deadline_offset(self) -> float:
        """Seconds after the start at which no new work begins."""
        return self.budget_seconds - self.margin

    def cross_check(self, where: str) -> None:
        if self.margin_seconds is not None and self.margin_seconds >= self.budget_seconds:
            raise SettingsError(f"{field_path(where, 'margin_seconds')} must be < budget_seconds "
                                f"({self.budget_seconds}), got {self.margin_seconds}")


CPU_BATCH_TOKENS = 32768
"""``solver.batch_tokens`` on a CPU when it is left unset (on a GPU it comes from the free memory)."""
CPU_SCORE_TOKEN_BUDGET = 16384
"""``solver.score_token_budget`` on a CPU when it is left unset."""
CPU_TTT_MAX_LENGTH = 8192
"""``ttt.max_length`` on a CPU when it is left unset."""
MEMORY_RULE = "arc_kit/models/memory.py, docs/gpu-memory.md"

SolverMode = Literal["greedy", "dfs"]
Formula = Literal["nvarc", "poe", "architects", "vote"]  # arc_kit.solve.selection.FORMULAS (a test checks)
KvCache = Literal["inplace", "dynamic"]  # arc_kit.solve.kv_cache.new_cache
Dtype = Literal["bfloat16", "float16", "float32"]
KV_CACHES: tuple[str, ...] = typing.get_args(KvCache)
FORMULAS: tuple[str, ...] = typing.get_args(Formula)
FormatChoice = Literal["auto", "arc-kit", "nvarc"]  # "auto" + arc_kit.core.formats.FORMAT_NAMES (a test checks)
LossOn = Literal["answer", "all_outputs"]  # arc_kit.core.formats.LOSS_ON (a test checks)
FORMAT_HELP = (
    "the prompt format the weights speak (arc_kit/core/formats.py): auto takes the one the weights' "
    "arc_kit_manifest.json records, else nvarc for NVARC's 16-token tokenizer, else arc-kit; a format that "
    "contradicts the manifest is refused")
LOSS_ON_HELP = ("answer: learn the test output only; all_outputs: every output grid of the text, the "
                "demonstration outputs too (NVARC)")


@dataclass
class SelectionSettings(Settings):
    """The selection formulas' weights (``arc_kit/solve/selection.py``). ``arc-kit select`` takes them as flags
    to re-rank a run's candidates without decoding again; the run itself reads them from ``[solver.selection]``."""

    vote_weight: float = setting(1.0, help=(
        "nvarc: what one more generation of a grid is worth against its mean re-scoring NLL, in nats"), ge=0)
    architects_offset: float = setting(3.0, help=(
        "architects: a view counts for a grid when its NLL is below this (log p above -offset), against it "
        "above"), ge=0)


@dataclass
class SolverSettings(Settings):
    """How to load the model, find candidates and choose two attempts; one setting each, kernel and dry run alike.

    The defaults follow NVARC (1st, ARC Prize 2025): depth-first search over 8 views, candidates re-scored under
    8 shared augmented views by ``count - mean NLL``. ``mode = "greedy"`` with ``scoring_views = 0`` is plain
    greedy decoding with attempt_2 voted over the views.
    """

    mode: SolverMode = setting("dfs", help=(
        "greedy: one completion per view; dfs: every completion at least min_probability likely"))
    views: int = setting(8, help="views per test input (the first is the task as given); candidates are pooled "
                                 "over them", ge=1)
    colour_views: bool = setting(True, help=(
        "views and scoring views permute colours (0 kept) besides D8 and pair order; off: geometric views only"))
    min_probability: float = setting(0.1, help=(
        "dfs: keep completions whose probability is at least this (the ARChitects used 0.17, NVARC 0.2)"),
        gt=0.0, le=1.0)
    max_candidates_per_view: int = setting(8, help="dfs: stop a view's search after this many", ge=1)
    scoring_views: int = setting(8, help=(
        "re-score every distinct candidate under this many augmented views (0: no re-scoring, vote)"), ge=0)
    formula: Formula = setting("nvarc", help="how candidates are ranked (arc_kit/solve/selection.py)")
    selection: SelectionSettings = setting(help="the formulas' weights", factory=SelectionSettings)
    spare_views: int = setting(8, help=(
        "spare-time phase: views a revisited test input gets, new ones (drawn after the first search's), "
        "pooled with the first search's candidates"), ge=1)
    spare_min_probability: float = setting(0.03, help=(
        "spare-time phase: dfs threshold of a revisit (below min_probability: more candidates per view)"),
        gt=0.0, le=1.0)
    max_length: int = setting(8192, help="context for prompt + answer; capped by the model's "
                                         "max_position_embeddings", ge=1)
    batch_size: int = setting(8, help="greedy: most prompts decoded together", ge=1)
    batch_tokens: int | None = setting(None, help=(
        "greedy and search: most tokens (rows x (prompt + answer room)) in one batch. Unset: what the GPU's free "
        "memory holds after the weights, from the model's KV bytes and activations per token "
        f"({MEMORY_RULE}); {CPU_BATCH_TOKENS} on a CPU"), ge=1)
    score_token_budget: int | None = setting(None, help=(
        "re-scoring: most tokens in one teacher-forced batch. Unset: what the GPU's free memory holds after the "
        f"weights, from the model's KV, activation and logits bytes per token ({MEMORY_RULE}); "
        f"{CPU_SCORE_TOKEN_BUDGET} on a CPU"), ge=1)
    seed: int = setting(0, help="chooses the views (same seed, same views, in any process)")
    format: FormatChoice = setting("auto", help=FORMAT_HELP)
    use_unsloth: bool = setting(True, help="on CUDA only; falls back to transformers when Unsloth is missing or "
                                           "fails")
    base_model: str | None = setting(None, help="base weights folder for a LoRA adapter whose recorded base is "
                                                "not here")
    device: str | None = setting(None, help="cuda or cpu (default: cuda when available)")
    dtype: Dtype | None = setting(None, help=(
        "default: bfloat16 on a GPU that computes in it (compute capability >= 8.0: A100, L4, H100), float16 on "
        "other GPUs (T4, P100, V100), float32 on cpu"))
    cpu_threads: int | None = setting(1, help="torch threads on cpu (unset: torch's default); small models "
                                              "decode faster on one thread", ge=0)
    prefill_chunk_tokens: int = setting(2048, help=(
        "a long prompt is prefilled in chunks of this many tokens, the deadline checked between chunks"), ge=1)
    kv_cache: KvCache = setting("inplace", help=(
        "inplace: KV buffers preallocated per batch and written in place (arc_kit/solve/kv_cache.py); dynamic: "
        "transformers' DynamicCache, grown every step. A model that refuses inplace falls back to dynamic"))


def _ttt_lora() -> LoraSettings:
    """Test-time training's adapter: rank 32 with alpha 32, as the Product-of-Experts paper (NVARC used 256 on
    Qwen3-4B; 32 is cheaper per task); embeddings off by default: two vocabulary-sized matrices per task cost
    memory and time on a small GPU (NVARC trained them)."""
    return LoraSettings(r=32, alpha=32)


@dataclass
class TTTSettings(Settings):
    """Per-task test-time training settings; the defaults follow NVARC (1st, ARC Prize 2025) except where noted.

    Its flags carry the prefix ``--ttt-`` (``--ttt-learning-rate``, ``--ttt-lora-r``).
    """

    enabled: bool = setting(True, help="train a fresh LoRA on each task's demonstration pairs")
    lora: LoraSettings = setting(help="the adapter trained per task", factory=_ttt_lora)
    colour_views: bool = setting(True, help=(
        "training rows permute colours (0 kept) besides D8 and demo order (NVARC: on); off for rules tied to "
        "particular colours, which a model then learns as weights"))
    max_samples: int = setting(128, help="training rows per task (NVARC: 8 D8 views x 16 colour permutations = "
                                         "128)", ge=1)
    epochs: int = setting(1, help="passes over the task's rows", ge=1)
    batch_size: int = setting(1, help="rows per optimiser step", ge=1)
    learning_rate: float = setting(5e-5, help="peak learning rate", gt=0)
    warmup_ratio: float = setting(0.1, help="share of the steps spent warming up linearly", ge=0.0, lt=1.0)
    lr_scheduler: str = setting("cosine", help="transformers scheduler name after the warmup")
    max_grad_norm: float = setting(1.0, help="gradient clipping (0: none)", ge=0)
    weight_decay: float = setting(0.0, help="AdamW weight decay", ge=0)
    optim: str = setting("adamw_torch", help="transformers optimiser name (AdamW)")
    seed: int = setting(0, help="chooses the LoRA's initial weights, the views and the row order (same seed, "
                                "same training)")
    max_length: int | None = setting(None, help=(
        "context for one training row; demonstration pairs are dropped (largest first) to fit. Unset: the "
        "longest row the GPU's free memory trains on after the weights and the adapter (its memory per token with "
        f"activation checkpointing, the logits at the model's vocabulary; {MEMORY_RULE}), at most "
        f"solver.max_length; {CPU_TTT_MAX_LENGTH} on a CPU"), ge=1)
    loss_on: LossOn = setting("answer", help=LOSS_ON_HELP)
    gradient_checkpointing: bool = setting(True, help="recompute activations in the backward pass (CUDA only; "
                                                      "CPU runs never checkpoint)")
    time_share: float = setting(0.5, help="the most of a task's time training may take; the rest is the "
                                          "solver's (search and re-scoring)", gt=0.0, lt=1.0)


@dataclass
class KernelSettings(Settings):
    """What only the Kaggle kernel needs: the competition, the attached sources it looks for, the quick pass."""

    competition: str = setting(COMPETITION_SLUG, help="competition slug")
    weights_dataset: str | None = setting(None, help="owner/slug of the weights dataset (or weights_model, not "
                                                      "both)")
    weights_model: str | None = setting(None, help=(
        "owner/model/framework/variation/N of the weights as a Kaggle Model (e.g. NVARC's "
        "sorokin/qwen3_4b_grids15_sft139/Transformers/bfloat16/1; or weights_dataset, not both)"))
    weights_kernel: str | None = setting(None, help=(
        "owner/slug of a notebook whose output holds the weights (the training kernel's export/), attached as "
        "its output; instead of weights_dataset or weights_model"))
    wheelhouse_dataset: str | None = setting(None, help=WHEELHOUSE_HELP)
    model_dir: str | None = setting(None, help="weights folder inside the kernel (default: found from the "
                                               "attached source, else searched)")
    challenges: str | None = setting(None, help="challenges file inside the kernel (default: the "
                                                "competition's test file)")
    quick_tasks: int = setting(8, help="interactive (not rerun) kernel sessions decode only this many tasks, "
                                       "shortest first; 0 = all", ge=0)

    def cross_check(self, where: str) -> None:
        if not self.competition:
            raise SettingsError(f"{field_path(where, 'competition')} must be a competition slug")
        named = [(name, value) for name, value in (("weights_dataset", self.weights_dataset),
                                                   ("weights_model", self.weights_model),
                                                   ("weights_kernel", self.weights_kernel)) if value]
        if len(named) > 1:  # the kernel would load one and silently ignore the other
            said = " and ".join(f"{field_path(where, name)} ({value})" for name, value in named)
            clear = ", ".join(f"--set {field_path(where, name)}=" for name, _ in named)
            raise SettingsError(f"{said} are both set: the kernel loads one set of weights. Keep one: {clear} "
                                "clears one a settings file names")


@dataclass
class SubmissionConfig(Settings):
    """The four tables as the kernel receives them (the ``KERNEL_SETTINGS`` literal) and a settings TOML holds."""

    kernel: KernelSettings = setting(help="the Kaggle kernel's own settings", factory=KernelSettings)
    run: RunSettings = setting(help="how the run spends its time", factory=RunSettings)
    solver: SolverSettings = setting(help="how candidates are found and chosen", factory=SolverSettings)
    ttt: TTTSettings = setting(help="per-task test-time training", factory=TTTSettings)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Any) -> SubmissionConfig:
        """Read a settings literal back; unknown tables or keys are an error naming them."""
        return from_dict(cls, values, "kernel settings")


def load_submission_config(path: Path | None = None, overrides: list[str] | None = None) -> SubmissionConfig:
    """A settings TOML (``[kernel]``, ``[run]``, ``[solver]``, ``[ttt]`` tables with any of their fields; the rest
    keep their defaults), with ``section.field=value`` overrides; the same shape as the kernel's
    ``KERNEL_SETTINGS``."""
    return load(SubmissionConfig, path, overrides)
