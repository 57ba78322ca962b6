"""Training settings as typed dataclasses, loaded from TOML with ``section.field=value`` overrides.

A config file has four tables, ``[model]``, ``[lora]``, ``[data]``, ``[train]``, each matching a dataclass below;
a missing field keeps its default, an unknown one is an error that names it (``arc_kit.config.schema``). The
defaults are the recipe: rsLoRA, LR 1e-4, batch 16 per device, 2 epochs (flat, then cosine down to
``min_lr_ratio``), weight decay on the embeddings, no gradient accumulation.

The prompt format is ``[model] format``: it belongs to the weights (a base that speaks NVARC's layout must keep
being trained in it, and the export's manifest records it for the kernel), as does ``[model] shrink_vocab``. What
the loss learns of each row is ``[data] loss_on``, beside the other choices of what a row holds
(``use_test_pairs``, ``leave_one_out``): it changes the labels, not the model.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

from arc_kit.config.lora import LoraSettings
from arc_kit.config.run import FORMAT_HELP, LOSS_ON_HELP, FormatChoice, LossOn
from arc_kit.config.schema import Settings, SettingsError, field_path, load, setting
from arc_kit.core.tasks import MAX_SIDE


@dataclass
class ModelSettings(Settings):
    name_or_path: str = setting("tiny", help=(
        "tiny: the kit's tiny random model (tests, demo); otherwise a hub id or a local folder"))
    backend: Literal["auto", "unsloth", "peft"] = setting("auto", help=(
        "auto: Unsloth on CUDA when installed, transformers + peft elsewhere"))
    max_seq_length: int = setting(2048, help="the longest row the model is loaded for", ge=1)
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = setting("auto", help=(
        "auto: bfloat16 on a GPU that computes in it (compute capability >= 8.0: A100, L4, H100), float16 on "
        "other GPUs (T4, P100, V100: trained under a gradient scaler), float32 on CPU"))
    load_in_4bit: bool = setting(False, help="load the base in 4 bits (Unsloth only)")
    full_finetuning: bool = setting(False, help=(
        "train every weight (the tiny model from scratch needs it); the [lora] table is then unused"))
    local_files_only: bool = setting(False, help="never look the model up on the hub")
    format: FormatChoice = setting("auto", help=FORMAT_HELP.replace("the weights", "the base"))
    shrink_vocab: bool = setting(False, help=(
        "shrink the base's vocabulary to the tokens its format writes before training (arc-kit shrink-vocab): the "
        "logits shrink ~10,000x, training and test-time training need far less memory; the export stays shrunk"))
    tiny_hidden_size: int = setting(128, help="the tiny model's hidden size (name_or_path = tiny)", ge=1)
    tiny_layers: int = setting(3, help="the tiny model's layers", ge=1)
    tiny_heads: int = setting(4, help="the tiny model's attention heads", ge=1)
    tiny_kv_heads: int = setting(2, help="the tiny model's key/value heads", ge=1)
    tiny_intermediate_size: int = setting(256, help="the tiny model's MLP width", ge=1)
    tiny_seed: int = setting(0, help="the tiny model's initial weights")


@dataclass
class SyntheticSettings(Settings):
    rules: list[str] = setting(help="rule names from arc_kit.core.synthetic.RULES; empty: no synthetic tasks",
                               factory=list)
    n_tasks: int = setting(0, help="tasks to generate", ge=0, meaning="0: 100 tasks when rules are set")
    seed: int = setting(0, help="the generator's seed")
    sizes: list[int] = setting(help=f"grid sides to draw from (1-{MAX_SIDE})", factory=lambda: [3])
    n_train: int = setting(3, help="train pairs per task", ge=1)
    n_test: int = setting(1, help="test pairs per task", ge=1)


SourceKind = Literal["auto", "challenges", "task_files", "pair_lists", "chat", "jsonl", "synthetic"]
RowUse = Literal["tasks", "as_given"]
BadRowChoice = Literal["fail", "skip"]


@dataclass
class SourceSettings(Settings):
    """One entry of ``[[data.sources]]``: a set of tasks in the mix, with its own share and augmentation count."""

    path: str = setting("", help=(
        "what to read, laid out as kind says: a challenges file (Kaggle layout) or a named data set (arc-kit data "
        "list), a folder of task files, a file or folder of pair lists, a datasets folder of chat rows, a JSON-lines "
        "file of problems (docs/corpora.md lists the published corpora and their layouts). Empty: the kit's "
        "synthetic generator, set by this entry's synthetic table"))
    kind: SourceKind = setting("auto", help=(
        "the layout of path. challenges: a Kaggle-layout challenges file or named set; task_files: a folder of one "
        "task per JSON file, searched recursively (ARC-AGI and ConceptARC repos, MINI-ARC); pair_lists: JSON lists "
        "of {input, output}, one file or a folder of them searched recursively (RE-ARC, NVARC's synthetic puzzles), "
        "cut into tasks of pairs_per_task; chat: a datasets folder saved with save_to_disk, rows {puzzle_name, "
        "messages: [{role, content}]} with each grid as digit rows joined by newlines (NVARC's augmented puzzles), "
        "or a folder of such folders; jsonl: JSON lines {examples: [[input, output], ...]} (BARC's ARC-Heavy), "
        "plain or .gz. auto: found from the path (run_info.json records what was found)"))
    rows: RowUse = setting("tasks", help=(
        "tasks: each row or file becomes a task (its last pair the test) that the held-out guard, de-duplication "
        "and the kit's views and leave-one-out apply to; as_given: each task is one training example exactly as "
        "given (its pairs in their order, the last one the target; no further views, leave-one-out or "
        "de-duplication, the held-out guard still applies): NVARC's augmented rows for a model in the nvarc "
        "format"))
    solutions: str = setting("", help=(
        "the solutions file (or named set) of a challenges file; empty: <x>_solutions.json beside it when there is "
        "one (a named set's always is)"))
    name: str = setting("", help=(
        "how logs and run_info.json name this source; empty: the file or folder name (synthetic for the "
        "generator)"))
    synthetic: SyntheticSettings = setting(help="the generator's settings (path empty)", factory=SyntheticSettings)
    augmentations: int = setting(0, help="views per task for this source", ge=0,
                                 meaning="0: data.augmentations")
    weight: float = setting(1.0, help=(
        "this source's rows are taken weight times over: 0.5 keeps a seeded half of them, 3 takes each three "
        "times (up-weights a small, clean set beside a large generated one)"), gt=0)
    max_tasks: int = setting(0, help="keep at most this many of the source's tasks (a seeded choice)", ge=0,
                             meaning="0: all")
    pairs_per_task: int = setting(4, help="for lists of pairs (RE-ARC): pairs per task made from them, the last "
                                          "one the test pair", ge=2)

    def cross_check(self, where: str) -> None:
        if self.kind == "synthetic" and self.path:
            raise SettingsError(f"{field_path(where, 'kind')} = synthetic takes no path (the generator is set by "
                                "the synthetic table)")
        if self.kind not in ("auto", "synthetic") and not self.path:
            raise SettingsError(f"{field_path(where, 'kind')} = {self.kind} needs a path to read")


@dataclass
class DataSettings(Settings):
    challenges: list[str] = setting(help=(
        "challenges files, named data sets or one-JSON-per-task folders to train on (the short form of "
        "sources)"), factory=list)
    solutions: list[str] = setting(help=(
        'solutions files or named sets, one per challenges entry in the same order ("" for one: its '
        "<x>_solutions.json beside it when there is one); empty: each found beside its challenges file"),
        factory=list)
    synthetic: SyntheticSettings = setting(help="synthetic tasks (the short form of sources)",
                                           factory=SyntheticSettings)
    sources: list[SourceSettings] = setting(help=(
        "a task mix: [[data.sources]] tables, used after the challenges/synthetic short forms above"),
        factory=list)
    held_out: list[str] = setting(help=(
        "tasks never trained on, matched by content in every source layout (any rotation, reflection, "
        "recolouring or pair order of them, under any id, and any task, chat row or cut of a pair list holding one "
        "of their pairs, a train pair or a solved test pair): arc-agi-2-evaluation (built in, as digests), named "
        "data sets (arc-agi-1/evaluation) and/or challenges files or folders (with solutions beside them to also "
        "catch copied answers). [] to train on everything (e.g. a final submission model)"),
        factory=lambda: ["arc-agi-2-evaluation"])
    on_bad_row: BadRowChoice = setting("fail", help=(
        "a malformed file or row (broken JSON, a grid that is not a grid, a chat row that is not pairs of turns): "
        "fail stops the run with one line naming it; skip leaves it out, names the first few and counts them per "
        "source in run_info.json"))
    dedupe: bool = setting(True, help="drop a task whose content (same canonical form as held_out's) is already "
                                      "in the mix")
    num_proc: int = setting(0, help=(
        "processes that read, digest and check the sources' rows and build the examples (datasets.map)"), ge=0,
        meaning="0: one per CPU core up to 8 past a source's first 2000 rows or a mix of 2000 tasks, else 1")
    cache_dir: str = setting("", help=(
        "where the built examples are cached (Arrow, memory-mapped); empty: <train.output_dir>/data-cache"))
    augmentations: int = setting(4, help="views per task (the first is the identity); each example is rendered "
                                         "under every view", ge=1, meaning="1 = the task as given")
    permute_background: bool = setting(False, help="colour permutations may move colour 0 too")
    leave_one_out: bool = setting(True, help="also train on each train pair as the target with the other train "
                                             "pairs as context")
    use_test_pairs: bool = setting(True, help="train on the real test pairs where solutions are known")
    loss_on: LossOn = setting("answer", help=LOSS_ON_HELP)
    max_length: int = setting(2048, help="the longest training row; train pairs are dropped to fit", ge=1)
    eval_fraction: float = setting(0.05, help=(
        "share of task ids held out for the eval loss (at least one task when > 0 and there are >= 2 tasks)"),
        ge=0.0, lt=1.0)
    max_eval_examples: int = setting(256, help="the most eval rows", ge=0)
    seed: int = setting(0, help="the split, the views and the row order")


@dataclass
class TrainSettings(Settings):
    output_dir: str = setting("runs/arc", help="the run folder: checkpoints, logs, final/")
    learning_rate: float = setting(1e-4, help="peak learning rate", gt=0)
    per_device_train_batch_size: int = setting(16, help="rows per step on each process", ge=1)
    per_device_eval_batch_size: int = setting(16, help="eval rows per step on each process", ge=1)
    num_train_epochs: int = setting(2, help="passes over the rows; the last decays, earlier ones are flat", ge=1)
    min_lr_ratio: float = setting(0.01, help=(
        "the last epoch decays (cosine) from the LR to LR * min_lr_ratio; earlier epochs are flat"), ge=0.0, le=1.0)
    weight_decay: float = setting(0.0, help="weight decay of the non-embedding weights", ge=0)
    embedding_weight_decay: float = setting(0.01, help=(
        "weight decay of the embedding weights (embed_tokens/lm_head, their LoRA or full copies)"), ge=0)
    embedding_learning_rate: float | None = setting(None, help=(
        "a separate LR for the embedding weights (ARChitects used 1e-5 with 1e-4); unset: the same as the rest"),
        gt=0)
    optim: str = setting("adamw_torch", help="transformers optimiser name")
    max_grad_norm: float = setting(1.0, help="gradient clipping", ge=0, meaning="0: no clipping")
    group_by_length: bool = setting(True, help=(
        "batch rows of similar length together so padding stays small (dataset.LengthGroupedSampler)"))
    length_group_batches: int = setting(128, help=(
        "group_by_length sorts rows by length within random groups of this many batches, then cuts the batches: "
        "larger groups pad less (ARC-AGI-2 training, batch 16, through the trainer's dataloader: 2.7% at 128, "
        "5.2% at 64, scripts/bench_padding.py), smaller ones vary which rows share a batch more from epoch to "
        "epoch"), ge=1)
    padding_free: bool = setting(False, help=(
        "TRL padding-free batches (needs FlashAttention on GPU); group_by_length is the portable choice"))
    save_steps: int = setting(200, help="checkpoint every this many steps", ge=1)
    save_total_limit: int = setting(2, help="checkpoints kept", ge=1)
    logging_steps: int = setting(10, help="log every this many steps", ge=1)
    eval_steps: int = setting(0, help="evaluate every this many steps", ge=0,
                              meaning="0: at the end of each epoch")
    max_steps: int = setting(-1, help="stop early after this many steps (the schedule is still the full run's); "
                                      "-1: the whole run")
    max_seconds: float | None = setting(None, help=(
        "a wall-clock budget for this run, counted from its start (model loading included): training stops "
        "cleanly before it ends, saving a checkpoint (checkpoint-<step>/, which --resume or --resume-from "
        "continues) and writing no final/ (so no export); the learning-rate schedule stays the full run's. "
        "Unset: no budget"), gt=0)
    stop_margin_seconds: float = setting(300.0, help=(
        "with max_seconds: seconds kept free at its end for the checkpoint and what follows (a kernel's export); "
        "no optimiser step starts that would end later than max_seconds - stop_margin_seconds"), ge=0)
    seed: int = setting(0, help="the trainer's seed")
    gradient_checkpointing: bool | None = setting(None, help="unset: on for CUDA, off for CPU")
    dataloader_num_workers: int = setting(0, help="dataloader worker processes", ge=0)
    report_to: str = setting("none", help="transformers' report_to (none, wandb, tensorboard ...)")
    fsdp: bool = setting(False, help=(
        "shard parameters, gradients and optimiser state over the processes (FSDP2, via accelerate) instead of "
        "keeping a full copy per GPU (DDP): for full fine-tuning of a model whose weights and Adam state do not "
        "fit one GPU. Takes effect under accelerate launch/torchrun with several processes; the "
        "transformers+peft backend only (Unsloth does not shard)"))
    fsdp_config: str = setting("", help=(
        'a JSON file of transformers\' fsdp_config (e.g. {"transformer_layer_cls_to_wrap": ["Qwen3DecoderLayer"], '
        '"activation_checkpointing": true}); empty: transformers\' defaults. Used only with fsdp'))
    debug_batches: bool = setting(False, help=(
        "each process writes what it trained on to debug/rank-<i>.jsonl in the run folder (a digest of each row "
        "per step, and its final weights' sums), so a test can see that the processes shared out the data"))

    RETIRED: ClassVar[dict[str, str]] = {
        "gradient_accumulation_steps": (
            "the recipe does not use gradient accumulation (it would change the effective batch, the step count the "
            "schedule is built on and the per-step checkpoints): remove the setting, and lower "
            "train.per_device_train_batch_size (or the sequence length) to fit memory instead, or add GPUs"),
    }
    """Settings an older config may still hold, refused with why (``schema.fill``) rather than silently ignored."""

    def cross_check(self, where: str) -> None:
        if self.max_steps != -1 and self.max_steps < 1:
            raise SettingsError(f"{field_path(where, 'max_steps')} must be >= 1, or -1 for the whole run, got "
                                f"{self.max_steps}")
        if self.max_seconds is not None and self.stop_margin_seconds >= self.max_seconds:
            raise SettingsError(f"{field_path(where, 'stop_margin_seconds')} ({self.stop_margin_seconds}) must be "
                                f"less than max_seconds ({self.max_seconds})")
        if not self.output_dir.strip():
            raise SettingsError(f"{field_path(where, 'output_dir')} must be a folder path")
        if self.fsdp_config:
            path = Path(self.fsdp_config)
            try:
                if not isinstance(json.loads(path.read_text(encoding="utf-8")), dict):
                    raise ValueError("not a JSON object")
            except (ValueError, OSError) as e:
                raise SettingsError(f"{field_path(where, 'fsdp_config')}: {path}: not a JSON object of "
                                    f"transformers' fsdp_config ({getattr(e, 'strerror', None) or e})") from None


@dataclass
class TrainConfig(Settings):
    model: ModelSettings = setting(help="the base model and how it is loaded", factory=ModelSettings)
    lora: LoraSettings = setting(help="the adapter (unused with model.full_finetuning)", factory=LoraSettings)
    data: DataSettings = setting(help="what the model trains on", factory=DataSettings)
    train: TrainSettings = setting(help="the trainer's settings", factory=TrainSettings)

    def cross_check(self, where: str) -> None:
        """Cross-table rules: what the recipe does not support, or makes no sense together."""
        from arc_kit.core.synthetic import RULES

        if self.train.fsdp and self.model.backend == "unsloth":
            raise SettingsError("train.fsdp = true needs model.backend = peft or auto: Unsloth does not shard a "
                                "model over GPUs (use DDP with Unsloth, or FSDP with transformers+peft)")
        d = self.data
        if d.solutions and len(d.solutions) != len(d.challenges):
            raise SettingsError(
                f"data.solutions has {len(d.solutions)} entries, data.challenges {len(d.challenges)}: give one per "
                'challenges entry ("" for none)')
        if not d.challenges and not d.synthetic.rules and not d.sources:
            raise SettingsError("no training data: set data.challenges, data.synthetic.rules or data.sources")
        generators = [("data.synthetic", d.synthetic),
                      *[(f"data.sources[{i}].synthetic", src.synthetic) for i, src in enumerate(d.sources)]]
        for where_, syn in generators:
            unknown = [r for r in syn.rules if r not in RULES]
            if unknown:
                raise SettingsError(f"{where_}.rules: unknown rule(s) {unknown}; known: {', '.join(sorted(RULES))}")
            if not syn.sizes or not all(1 <= x <= MAX_SIDE for x in syn.sizes):
                raise SettingsError(f"{where_}.sizes must be a non-empty list of grid sides 1..{MAX_SIDE}, got "
                                    f"{syn.sizes!r}")
        for i, src in enumerate(d.sources):
            if bool(src.path) == bool(src.synthetic.rules):
                raise SettingsError(f"data.sources[{i}]: give either path (task files) or synthetic.rules (the "
                                    "generator), not both or neither")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """A training config: a TOML file (or the defaults when None) with ``section.field=value`` overrides, typed
    and validated, any error naming the file, table and field."""
    return load(TrainConfig, Path(path) if path is not None else None, overrides)


def builtin_configs() -> list[str]:
    return sorted(p.name for p in (resources.files("arc_kit") / "configs").iterdir() if p.name.endswith(".toml"))


def resolve_config_path(name: str | Path) -> Path:
    """A path that exists, or the name of a built-in config (``tiny-cpu``, ``tiny-cpu.toml``, ``gpu-qwen``)."""
    p = Path(name)
    if p.exists():
        return p
    stem = p.name if p.name.endswith(".toml") else f"{p.name}.toml"
    builtin = resources.files("arc_kit") / "configs" / stem
    if builtin.is_file():
        return Path(str(builtin))
    raise SettingsError(f"{name}: no such config file and no built-in config of that name "
                        f"(built-in: {', '.join(builtin_configs())})")
