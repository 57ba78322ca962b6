"""Training settings as typed dataclasses, loaded from TOML with ``section.field=value`` overrides.

A config file has four tables, ``[model]``, ``[lora]``, ``[data]``, ``[train]``, each matching a dataclass below;
a missing field keeps its default, an unknown one is an error that names it. The defaults are the recipe: rsLoRA,
LR 1e-4, batch 16 per device, 2 epochs (flat, then cosine down to ``min_lr_ratio``), weight decay on the
embeddings, no gradient accumulation.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


class ConfigError(ValueError):
    """A config file or override is wrong; the message names the file, table and field."""


@dataclass
class ModelSettings:
    name_or_path: str = "tiny"
    """``tiny`` builds the kit's tiny random model (tests, demo); otherwise a hub id or a local folder."""
    backend: str = "auto"
    """``auto`` (Unsloth on CUDA, transformers+peft on CPU), ``unsloth`` or ``peft``."""
    max_seq_length: int = 2048
    dtype: str = "auto"
    """``auto`` (bf16 on CUDA, fp32 on CPU), ``bfloat16``, ``float16`` or ``float32``."""
    load_in_4bit: bool = False
    full_finetuning: bool = False
    """Train every weight (the tiny model from scratch needs it); the [lora] table is then unused."""
    local_files_only: bool = False
    # The tiny model's shape (used only when name_or_path == "tiny").
    tiny_hidden_size: int = 128
    tiny_layers: int = 3
    tiny_heads: int = 4
    tiny_kv_heads: int = 2
    tiny_intermediate_size: int = 256
    tiny_seed: int = 0


@dataclass
class LoraSettings:
    r: int = 64
    alpha: int = 64
    dropout: float = 0.0
    use_rslora: bool = True
    """rsLoRA scales the update by alpha/sqrt(r) rather than alpha/r, so a large rank still learns."""
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    train_embeddings: bool = False
    """Also train ``embed_tokens`` and ``lm_head`` as full matrices (peft ``modules_to_save``)."""


@dataclass
class SyntheticSettings:
    rules: list[str] = field(default_factory=list)
    """Empty: no synthetic tasks. Names from ``arc_kit.synthetic.RULES``."""
    n_tasks: int = 0
    seed: int = 0
    sizes: list[int] = field(default_factory=lambda: [3])
    n_train: int = 3
    n_test: int = 1


@dataclass
class SourceSettings:
    """One entry of ``[[data.sources]]``: a set of tasks in the mix, with its own share and augmentation count."""

    path: str = ""
    """A challenges file (Kaggle layout), a named data set (``arc-agi-2/training``; ``arc-kit data list``), or a
    folder of JSON files searched recursively (ARC-AGI and ConceptARC repos: one task per file; RE-ARC: one list of
    pairs per file, cut into tasks of ``pairs_per_task``). Empty: the kit's synthetic generator, set by this entry's
    ``synthetic`` table."""
    solutions: str = ""
    """The solutions file (or named set) of a challenges file; empty: ``<x>_solutions.json`` beside it when there
    is one (a named set's always is)."""
    name: str = ""
    """How logs and run_info.json name this source; empty: the file or folder name (``synthetic`` for the
    generator)."""
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)
    augmentations: int = 0
    """Views per task for this source; 0: ``data.augmentations``."""
    weight: float = 1.0
    """This source's rows are taken ``weight`` times over: 0.5 keeps a seeded half of them, 3 takes each three
    times (up-weights a small, clean set beside a large generated one)."""
    max_tasks: int = 0
    """Keep at most this many of the source's tasks (a seeded choice); 0: all."""
    pairs_per_task: int = 4
    """For lists of pairs (RE-ARC): pairs per task made from them, the last one the test pair."""


@dataclass
class DataSettings:
    challenges: list[str] = field(default_factory=list)
    """Challenges files, named data sets or one-JSON-per-task folders to train on (the short form of
    ``sources``)."""
    solutions: list[str] = field(default_factory=list)
    """Solutions files or named sets, one per challenges entry in the same order ("" for one: its
    ``<x>_solutions.json`` beside it when there is one); empty: each found beside its challenges file."""
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)
    sources: list[SourceSettings] = field(default_factory=list)
    """A task mix: ``[[data.sources]]`` tables, used after the challenges/synthetic short forms above."""
    held_out: list[str] = field(default_factory=lambda: ["arc-agi-2-evaluation"])
    """Tasks never trained on, matched by content (any rotation, reflection, recolouring or pair order of them,
    under any id, and any task holding one of their solved test pairs): ``arc-agi-2-evaluation`` (built in, as
    digests), named data sets (``arc-agi-1/evaluation``) and/or challenges files or folders (with solutions beside
    them to also catch copied answers). [] to train on everything (e.g. a final submission model)."""
    dedupe: bool = True
    """Drop a task whose content (same canonical form as held_out's) is already in the mix."""
    num_proc: int = 0
    """Processes that build the examples (``datasets.map``); 0: one per CPU core up to 8 when there are >= 2000
    tasks, else 1."""
    cache_dir: str = ""
    """Where the built examples are cached (Arrow, memory-mapped); empty: ``<train.output_dir>/data-cache``."""
    augmentations: int = 4
    """Views per task (the first is the identity); each example is rendered under every view."""
    permute_background: bool = False
    leave_one_out: bool = True
    """Also train on each train pair as the target with the other train pairs as context."""
    use_test_pairs: bool = True
    """Train on the real test pairs where solutions are known."""
    max_length: int = 2048
    eval_fraction: float = 0.05
    """Share of task ids held out for the eval loss (at least one task when > 0 and there are >= 2 tasks)."""
    max_eval_examples: int = 256
    seed: int = 0


@dataclass
class TrainSettings:
    output_dir: str = "runs/arc"
    learning_rate: float = 1e-4
    per_device_train_batch_size: int = 16
    per_device_eval_batch_size: int = 16
    gradient_accumulation_steps: int = 1
    """Must stay 1: the recipe refuses accumulation (see ``validate``)."""
    num_train_epochs: int = 2
    min_lr_ratio: float = 0.01
    """The last epoch decays (cosine) from the LR to LR * min_lr_ratio; earlier epochs are flat."""
    weight_decay: float = 0.0
    """Weight decay of the non-embedding weights."""
    embedding_weight_decay: float = 0.01
    """Weight decay of the embedding weights (``embed_tokens``/``lm_head``, their LoRA or full copies)."""
    embedding_learning_rate: float | None = None
    """A separate LR for the embedding weights (ARChitects used 1e-5 with 1e-4); None: same as the rest."""
    optim: str = "adamw_torch"
    max_grad_norm: float = 1.0
    group_by_length: bool = True
    """Batch examples of similar length together so padding stays small (``dataset.LengthGroupedSampler``)."""
    length_group_batches: int = 128
    """group_by_length sorts rows by length within random groups of this many batches, then cuts the batches:
    larger groups pad less (ARC-AGI-2 training, batch 16, measured through the trainer's dataloader by
    ``scripts/bench_padding.py``: 2.7% at 128, 5.2% at 64), smaller ones vary which rows share a batch more from
    epoch to epoch. The demo config sets 64: with 128 its tiny model stopped learning (eval loss 1.23, score 0
    instead of 0.008 and 1.0): on 2,000 near-identical rows the batch order matters to a tiny model."""
    padding_free: bool = False
    """TRL padding-free batches (needs FlashAttention on GPU); group_by_length is the portable choice."""
    save_steps: int = 200
    save_total_limit: int = 2
    logging_steps: int = 10
    eval_steps: int = 0
    """0: evaluate at the end of each epoch."""
    max_steps: int = -1
    """Stop early after this many steps (the schedule is still the full run's); -1: the whole run."""
    seed: int = 0
    gradient_checkpointing: bool | None = None
    """None: on for CUDA, off for CPU."""
    dataloader_num_workers: int = 0
    report_to: str = "none"
    fsdp: bool = False
    """Shard parameters, gradients and optimiser state over the processes (FSDP2, via accelerate) instead of
    keeping a full copy per GPU (DDP): for full fine-tuning of a model whose weights and Adam state do not fit one
    GPU. Takes effect under ``accelerate launch``/``torchrun`` with several processes; the transformers+peft backend
    only (Unsloth does not shard)."""
    fsdp_config: str = ""
    """A JSON file of transformers' ``fsdp_config`` (e.g. ``{"transformer_layer_cls_to_wrap": ["Qwen3DecoderLayer"],
    "activation_checkpointing": true}``); empty: transformers' defaults. Used only with ``fsdp``."""
    debug_batches: bool = False
    """Each process writes what it trained on to ``debug/rank-<i>.jsonl`` in the run folder (a digest of each row
    per step, and its final weights' sums), so a test can see that the processes shared out the data."""


@dataclass
class TrainConfig:
    model: ModelSettings = field(default_factory=ModelSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    data: DataSettings = field(default_factory=DataSettings)
    train: TrainSettings = field(default_factory=TrainSettings)

    def validate(self) -> TrainConfig:
        """Refuse settings the recipe does not support or that make no sense, naming the field and saying why.

        Why here: a bad value must stop the run at config load, not after minutes of model loading.
        """
        t = self.train
        if t.gradient_accumulation_steps != 1:
            raise ConfigError(
                f"train.gradient_accumulation_steps = {t.gradient_accumulation_steps}: the recipe does not use "
                "gradient accumulation. It changes the effective batch, the step count the schedule is built on "
                "(flat epoch, then cosine over the last), and the per-step checkpoints. Lower "
                "train.per_device_train_batch_size (or the sequence length) to fit memory instead, or add GPUs."
            )
        for name, value, ok, rule in self._bounds():
            if not ok:
                raise ConfigError(f"{name} must be {rule}, got {value!r}")
        if t.fsdp and self.model.backend == "unsloth":
            raise ConfigError("train.fsdp = true needs model.backend = peft or auto: Unsloth does not shard a model "
                              "over GPUs (use DDP with Unsloth, or FSDP with transformers+peft)")
        if t.fsdp_config:
            if not Path(t.fsdp_config).is_file():
                raise ConfigError(f"train.fsdp_config: {t.fsdp_config} is not a file (a JSON of transformers' "
                                  "fsdp_config)")
            try:
                if not isinstance(json.loads(Path(t.fsdp_config).read_text(encoding="utf-8")), dict):
                    raise ValueError("not a JSON object")
            except (ValueError, OSError) as e:
                raise ConfigError(f"train.fsdp_config: {t.fsdp_config}: not a JSON object ({e})") from None
        if self.model.backend not in ("auto", "unsloth", "peft"):
            raise ConfigError(f"model.backend must be auto, unsloth or peft, got {self.model.backend!r}")
        if self.model.dtype not in ("auto", "bfloat16", "float16", "float32"):
            raise ConfigError(f"model.dtype must be auto, bfloat16, float16 or float32, got {self.model.dtype!r}")
        d = self.data
        if d.solutions and len(d.solutions) != len(d.challenges):
            raise ConfigError(
                f"data.solutions has {len(d.solutions)} entries, data.challenges {len(d.challenges)}: give one per "
                "challenges entry (\"\" for none)"
            )
        if not d.challenges and not d.synthetic.rules and not d.sources:
            raise ConfigError("no training data: set data.challenges, data.synthetic.rules or data.sources")
        from arc_kit.synthetic import RULES

        for where, syn in [("data.synthetic", d.synthetic),
                           *[(f"data.sources[{i}].synthetic", src.synthetic) for i, src in enumerate(d.sources)]]:
            unknown = [r for r in syn.rules if r not in RULES]
            if unknown:
                raise ConfigError(f"{where}.rules: unknown rule(s) {unknown}; known: {', '.join(sorted(RULES))}")
        for i, src in enumerate(d.sources):
            if bool(src.path) == bool(src.synthetic.rules):
                raise ConfigError(f"data.sources[{i}]: give either path (task files) or synthetic.rules (the "
                                  "generator), not both or neither")
        return self

    def _bounds(self) -> list[tuple[str, Any, bool, str]]:
        """(field, value, value is allowed, what is allowed) for every numeric setting with a sensible range."""
        from arc_kit.tasks import MAX_SIDE

        m, lo, d, s, t = self.model, self.lora, self.data, self.data.synthetic, self.train
        return [
            ("model.max_seq_length", m.max_seq_length, m.max_seq_length >= 1, ">= 1"),
            *[(f"model.{n}", getattr(m, n), getattr(m, n) >= 1, ">= 1") for n in (
                "tiny_hidden_size", "tiny_layers", "tiny_heads", "tiny_kv_heads", "tiny_intermediate_size")],
            ("lora.r", lo.r, lo.r >= 1, ">= 1"),
            ("lora.alpha", lo.alpha, lo.alpha > 0, "> 0"),
            ("lora.dropout", lo.dropout, 0.0 <= lo.dropout < 1.0, "in [0, 1)"),
            ("data.augmentations", d.augmentations, d.augmentations >= 1, ">= 1 (1 = the task as given)"),
            ("data.max_length", d.max_length, d.max_length >= 1, ">= 1"),
            ("data.eval_fraction", d.eval_fraction, 0.0 <= d.eval_fraction < 1.0, "in [0, 1)"),
            ("data.max_eval_examples", d.max_eval_examples, d.max_eval_examples >= 0, ">= 0"),
            ("data.synthetic.n_tasks", s.n_tasks, s.n_tasks >= 0, ">= 0 (0: 100 tasks when rules are set)"),
            ("data.synthetic.sizes", s.sizes, bool(s.sizes) and all(1 <= x <= MAX_SIDE for x in s.sizes),
             f"a non-empty list of grid sides 1..{MAX_SIDE}"),
            ("data.synthetic.n_train", s.n_train, s.n_train >= 1, ">= 1"),
            ("data.synthetic.n_test", s.n_test, s.n_test >= 1, ">= 1"),
            ("data.num_proc", d.num_proc, d.num_proc >= 0, ">= 0 (0: automatic)"),
            *[row for i, src in enumerate(d.sources) for row in (
                (f"data.sources[{i}].augmentations", src.augmentations, src.augmentations >= 0,
                 ">= 0 (0: data.augmentations)"),
                (f"data.sources[{i}].weight", src.weight, src.weight > 0, "> 0"),
                (f"data.sources[{i}].max_tasks", src.max_tasks, src.max_tasks >= 0, ">= 0 (0: all)"),
                (f"data.sources[{i}].pairs_per_task", src.pairs_per_task, src.pairs_per_task >= 2, ">= 2"),
                (f"data.sources[{i}].synthetic.sizes", src.synthetic.sizes,
                 bool(src.synthetic.sizes) and all(1 <= x <= MAX_SIDE for x in src.synthetic.sizes),
                 f"a non-empty list of grid sides 1..{MAX_SIDE}"),
            )],
            ("train.output_dir", t.output_dir, bool(t.output_dir.strip()), "a folder path"),
            ("train.learning_rate", t.learning_rate, t.learning_rate > 0, "> 0"),
            ("train.embedding_learning_rate", t.embedding_learning_rate,
             t.embedding_learning_rate is None or t.embedding_learning_rate > 0, "> 0 (or unset: the same LR)"),
            ("train.per_device_train_batch_size", t.per_device_train_batch_size, t.per_device_train_batch_size >= 1,
             ">= 1"),
            ("train.per_device_eval_batch_size", t.per_device_eval_batch_size, t.per_device_eval_batch_size >= 1,
             ">= 1"),
            ("train.num_train_epochs", t.num_train_epochs, t.num_train_epochs >= 1, ">= 1"),
            ("train.length_group_batches", t.length_group_batches, t.length_group_batches >= 1, ">= 1"),
            ("train.min_lr_ratio", t.min_lr_ratio, 0.0 <= t.min_lr_ratio <= 1.0, "in [0, 1]"),
            ("train.weight_decay", t.weight_decay, t.weight_decay >= 0, ">= 0"),
            ("train.embedding_weight_decay", t.embedding_weight_decay, t.embedding_weight_decay >= 0, ">= 0"),
            ("train.max_grad_norm", t.max_grad_norm, t.max_grad_norm >= 0, ">= 0 (0: no clipping)"),
            ("train.save_steps", t.save_steps, t.save_steps >= 1, ">= 1"),
            ("train.save_total_limit", t.save_total_limit, t.save_total_limit >= 1, ">= 1"),
            ("train.logging_steps", t.logging_steps, t.logging_steps >= 1, ">= 1"),
            ("train.eval_steps", t.eval_steps, t.eval_steps >= 0, ">= 0 (0: at the end of each epoch)"),
            ("train.max_steps", t.max_steps, t.max_steps == -1 or t.max_steps >= 1, ">= 1, or -1 for the whole run"),
            ("train.dataloader_num_workers", t.dataloader_num_workers, t.dataloader_num_workers >= 0, ">= 0"),
        ]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------------------------
# Loading


def _fill(cls: type, raw: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from a TOML table, type-checking each field and naming any unknown one."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; known: {sorted(names)}")
    values = {}
    for name, value in raw.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _fill(hint, value, f"{where}.{name}")
        else:
            values[name] = _check_type(value, hint, f"{where}.{name}")
    return cls(**values)


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if dataclasses.is_dataclass(args[0]):  # an array of tables, e.g. [[data.sources]]
            return [_fill(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
        return [_check_type(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if args and type(None) in args:  # Optional[X]
        if value is None:
            return None
        return _check_type(value, next(a for a in args if a is not type(None)), where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is bool and not isinstance(value, bool) or hint is not bool and isinstance(value, bool):
        raise ConfigError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.learning_rate=2e-4`` -> (["train", "learning_rate"], 2e-4); values are read as TOML when they
    parse (numbers, booleans, ``[...]`` lists, quoted strings), else taken as a plain string; a plain string with
    commas becomes a list (``data.challenges=a.json,b.json``)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected section.field=value")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if len(path) < 2:
        raise ConfigError(f"override {text!r}: the key needs a section, e.g. train.{key.strip()}")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = [p.strip() for p in raw.split(",")] if "," in raw else raw
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        table = raw
        for part in path[:-1]:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ConfigError(f"override {text!r}: {part} is not a table")
        table[path[-1]] = value
    return raw


def _coerce_lists(raw: dict[str, Any], cls: type) -> None:
    """A single value given for a list field (from an override) becomes a one-item list."""
    hints = typing.get_type_hints(cls)
    for name, value in list(raw.items()):
        hint = hints.get(name)
        if hint is None:
            continue
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            _coerce_lists(value, hint)
        elif typing.get_origin(hint) is list and not isinstance(value, list):
            raw[name] = [value]


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a TOML file (or the defaults when None), apply overrides, type-check and validate."""
    raw: dict[str, Any] = {}
    where = "defaults"
    if path is not None:
        path = Path(path)
        where = str(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found (built-in: {', '.join(builtin_configs())})") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML ({e})") from None
        except (OSError, UnicodeDecodeError) as e:  # a folder, no permission, not text
            raise ConfigError(f"{path}: cannot read the config file ({getattr(e, 'strerror', None) or e})") from None
    raw = apply_overrides(raw, overrides or [])
    _coerce_lists(raw, TrainConfig)
    config = _fill(TrainConfig, raw, where)
    try:
        return config.validate()
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}" if path is not None else str(e)) from None


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
    raise ConfigError(f"{name}: no such config file and no built-in config of that name "
                      f"(built-in: {', '.join(builtin_configs())})")
