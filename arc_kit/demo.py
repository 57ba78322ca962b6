"""``arc-kit demo``: the whole kit, offline, on a CPU, on its own synthetic tasks, in about ten minutes.

Stages: tiny model -> synthetic tasks -> score before -> train (the recipe, scaled down) -> export as a Kaggle
dataset folder -> build the kernel folder -> run the kernel's code locally on a fake ``/kaggle/input`` -> score
after -> (optionally) dry-run on real ARC files -> HTML report. Nothing is sent anywhere.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from arc_kit import COMPETITION_SLUG
from arc_kit.config.run import SolverSettings, SubmissionConfig, TTTSettings, load_submission_config
from arc_kit.config.schema import Settings, setting

T = TypeVar("T")

DEMO_OWNER = "demo-user"
WEIGHTS_SLUG = "arc-kit-demo-weights"
DEMO_SETTINGS = Path(__file__).resolve().parent / "configs" / "demo-settings.toml"
READ_RULE = "swap"  # the colour map hidden in the demo's second held-out set


def demo_config(path: Path = DEMO_SETTINGS) -> SubmissionConfig:
    """The demo's solver and TTT settings: the kit's defaults with ``demo-settings.toml``'s changes."""
    return load_submission_config(path)


@dataclass
class DemoSettings(Settings):
    """What the demo does besides answering: its folder, training config, held-out sets, optional real files.
    How it answers (solver and TTT) is a ``SubmissionConfig``, ``DEMO_SETTINGS`` unless another is given."""

    out: Path = setting(Path("demo-out"), help="folder for every artefact")
    train_config: str = setting("demo", help=(
        "training config: a built-in name or a TOML path; its [data.synthetic] table says what the model learns"))
    overrides: list[str] = setting(help="training settings changed (table.field=value; arc-kit demo --set)",
                                   factory=list, flag=False)
    heldout_tasks: int = setting(24, help="held-out synthetic tasks of the trained rule", ge=1)
    heldout_seed: int = setting(1000, help=(
        "held-out tasks use another seed than training, so they are new grids of the same rules"))
    read_tasks: int = setting(12, help=(
        "held-out tasks whose rule must be read from the demonstrations: the trained rule, then a colour swap "
        "hidden in each task (arc_kit.core.synthetic.colour_map_tasks). The model never saw a swap: before "
        "test-time training it cannot answer them, after it can"), ge=0)
    challenges: Path | None = setting(None, help=(
        "also dry-run on these real ARC challenges (a file or a named data set, e.g. arc-agi-2/evaluation)"),
        task_file="challenges")
    solutions: Path | None = setting(None, help="their solutions, for a score (a file or a named data set)",
                                     task_file="solutions")
    real_budget_seconds: float = setting(120.0, help="seconds for the dry run on real ARC files", gt=0)
    heldout_budget_seconds: float = setting(600.0, help="seconds for each dry run on the held-out tasks", gt=0)
    competition: str = setting(COMPETITION_SLUG, help="the competition the demo's kernel attaches")


@dataclass
class StageTimes:
    seconds: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, fn: Callable[[], T]) -> T:
        print(f"\n== {name}", flush=True)
        started = time.time()
        result = fn()
        self.seconds[name] = time.time() - started
        print(f"== {name}: {self.seconds[name]:.1f} s", flush=True)
        return result


def peak_memory_mb() -> float:
    """Peak resident memory of this process or any finished child (Linux reports kB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def run_demo(demo: DemoSettings, config: SubmissionConfig | None = None) -> dict[str, Any]:
    from arc_kit.config.training import load_config, resolve_config_path

    out = demo.out.resolve()
    # Read first: a bad training setting is refused before anything is made.
    train_config = load_config(resolve_config_path(demo.train_config),
                               [*demo.overrides, f"train.output_dir={out / 'run'}"])

    import torch

    from arc_kit.core.metric import score_submission
    from arc_kit.core.synthetic import colour_map_tasks, generate_tasks
    from arc_kit.core.tasks import load_tasks, read_json, write_task_files
    from arc_kit.training import export_model, run_training

    config = config or demo_config()
    # Measured here: the tiny model steps several times faster on one thread than on two contended ones.
    torch.set_num_threads(config.solver.cpu_threads or 1)
    out.mkdir(parents=True, exist_ok=True)
    times = StageTimes()
    started = time.time()

    if (out / "run").exists():
        shutil.rmtree(out / "run")  # a demo always starts fresh; a real run resumes instead
    synth = train_config.data.synthetic

    def make_data() -> tuple[Path, Path]:
        same = generate_tasks(synth.rules, demo.heldout_tasks, seed=demo.heldout_seed, sizes=synth.sizes,
                              n_train=synth.n_train, n_test=synth.n_test)
        read = colour_map_tasks([READ_RULE], demo.read_tasks, seed=demo.heldout_seed, prefix="read",
                                then=synth.rules[0], sizes=synth.sizes, n_train=synth.n_train)
        (out / "data").mkdir(parents=True, exist_ok=True)
        paths = out / "data" / "heldout_challenges.json", out / "data" / "heldout_solutions.json"
        write_task_files([*same, *read], *paths)
        return paths

    heldout_challenges, heldout_solutions = times.run("synthetic held-out tasks", make_data)
    heldout = load_tasks(heldout_challenges, heldout_solutions)
    read_ids = {tid for tid in heldout.tasks if tid.startswith("read-")}
    groups = {"same rule": set(heldout.tasks) - read_ids, "rule read from the demos": read_ids}

    def base_model() -> Path:
        from arc_kit.models.tiny import BASE_MODEL_DIR, tiny_shape, write_tiny_model

        return write_tiny_model(out / BASE_MODEL_DIR, tiny_shape(train_config.model))

    base_dir = times.run("tiny model", base_model)
    train_config.model.name_or_path = str(base_dir)
    train_config.model.local_files_only = True

    before = times.run("score before training",
                       lambda: _dry_run(base_dir, heldout_challenges, heldout_solutions, out / "before", config.solver,
                                        budget=demo.heldout_budget_seconds))
    result = times.run("train (the recipe, scaled down)", lambda: run_training(train_config))
    merged = times.run("export", lambda: _export_as_dataset(export_model, result.output_dir, out / "export"))
    pretrained = times.run("score after pre-training (no test-time training)",
                           lambda: _dry_run(merged, heldout_challenges, heldout_solutions, out / "pretrained",
                                            config.solver, budget=demo.heldout_budget_seconds))
    kernel_dir = times.run("build the kernel folder",
                           lambda: _build_kernel(out / "kernel", demo.competition, config.solver, config.ttt))
    after_dir = out / "kernel-run"
    times.run("run the kernel entry locally",
              lambda: _run_kernel_locally(kernel_dir, merged, heldout_challenges, out / "kaggle-input", after_dir,
                                          demo.competition))
    after = score_submission(read_json(after_dir / "submission.json"), read_json(heldout_solutions))

    real = None
    if demo.challenges:
        real = times.run("dry run on real ARC files",
                         lambda: _dry_run(merged, demo.challenges, demo.solutions,
                                          out / "real-dry-run", config.solver,
                                          budget=demo.real_budget_seconds))

    stages = {"before": before["per_task"], "after pre-training": pretrained["per_task"],
              "after": {tid: ts.score for tid, ts in after.per_task.items()}}
    summary = {
        "rules": ", ".join(synth.rules),
        "held-out tasks": len(heldout),
        "score before (held-out)": before["score"],
        "score after pre-training (held-out)": pretrained["score"],
        "score after (held-out)": after.score,
        **{f"score {stage} ({group}, {len(ids)})": _mean(scores, ids)
           for group, ids in groups.items() if ids for stage, scores in stages.items()},
        "test-time training in the kernel run": "on" if config.ttt.enabled else "off",
        "train steps": result.steps,
        "train loss": result.train_loss,
        "eval loss": result.eval_loss,
        **({"real ARC score": real["score"], "real ARC tasks": real["tasks"]} if real else {}),
        **{f"time: {k}": f"{v:.1f} s" for k, v in times.seconds.items()},
        "total time": f"{time.time() - started:.1f} s",
        "peak memory": f"{peak_memory_mb():.0f} MB",
    }
    report = _write_report(out, summary, heldout, after_dir / "submission.json", result.log_path)
    artefacts = {
        "held-out tasks": heldout_challenges,
        "base model": base_dir,
        "training run (checkpoints, train_log.jsonl)": result.output_dir,
        "exported model (Kaggle dataset folder)": merged,
        "kernel folder (kaggle kernels push -p)": kernel_dir,
        "submission.json (kernel run)": after_dir / "submission.json",
        "HTML report": report,
    }
    _print_table(summary, artefacts)
    out_json = {"summary": summary, "artefacts": {k: str(v) for k, v in artefacts.items()}}
    (out / "demo.json").write_text(json.dumps(out_json, indent=1, default=str))
    return out_json


def _dry_run(model: Path, challenges: Path, solutions: Path | None, out: Path, solver: SolverSettings, *,
             budget: float) -> dict[str, Any]:
    """A dry run without test-time training: what the model knows by itself."""
    from arc_kit.config.run import RunSettings
    from arc_kit.run.job import RunJob
    from arc_kit.run.runner import dry_run

    report = dry_run(RunJob(model_dir=model, challenges=challenges, output=out / "submission.json",
                            solutions=solutions, run=RunSettings(budget_seconds=budget), solver=solver,
                            ttt=TTTSettings(enabled=False)))
    per_task = {tid: (sum(r.correct) / len(r.correct) if r.correct else 0.0) for tid, r in report.per_task.items()}
    return {"score": report.score if report.score is not None else 0.0, "tasks": report.tasks, "per_task": per_task}


def _mean(scores: dict[str, float], ids: set[str]) -> float:
    """The ARC score over ``ids`` (a task missing from ``scores`` counts 0)."""
    return round(sum(scores.get(tid, 0.0) for tid in ids) / len(ids), 4)


def _export_as_dataset(export_model: Callable[..., Path], run_dir: Path, out: Path) -> Path:
    from arc_kit.kaggle.upload import DatasetSpec, write_dataset_metadata

    merged = export_model(run_dir, out, dtype="float32")
    write_dataset_metadata(merged, DatasetSpec(ref=f"{DEMO_OWNER}/{WEIGHTS_SLUG}"))
    return merged


def _build_kernel(out: Path, competition: str, solver: SolverSettings, ttt: TTTSettings) -> Path:
    from arc_kit.config.run import KernelSettings, SubmissionConfig
    from arc_kit.kaggle.kernel_build import KernelMetadataSettings, build_kernel, kernel_entry

    config = SubmissionConfig(KernelSettings(competition=competition, weights_dataset=f"{DEMO_OWNER}/{WEIGHTS_SLUG}"),
                              solver=solver, ttt=ttt)
    build_kernel(kernel_entry("submission"), out, KernelMetadataSettings(owner=DEMO_OWNER), config)
    return out


def _run_kernel_locally(kernel_dir: Path, merged: Path, challenges: Path, input_root: Path, out: Path,
                        competition: str) -> None:
    """Lay out a fake /kaggle/input as Kaggle mounts it since 2026 (competitions/<slug>/,
    datasets/<owner>/<slug>/) and run the kernel's code file on it."""
    if input_root.exists():
        shutil.rmtree(input_root)
    (input_root / "competitions" / competition).mkdir(parents=True)
    shutil.copy(challenges, input_root / "competitions" / competition / "arc-agi_test_challenges.json")
    (input_root / "datasets" / DEMO_OWNER).mkdir(parents=True)
    (input_root / "datasets" / DEMO_OWNER / WEIGHTS_SLUG).symlink_to(merged, target_is_directory=True)
    out.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "ARC_KIT_INPUT_ROOT": str(input_root),
        "ARC_KIT_OUTPUT": str(out / "submission.json"),
        "KAGGLE_IS_COMPETITION_RERUN": "1",  # answer every task, as the real rerun does
    }
    subprocess.run([sys.executable, str(kernel_dir / "main.py")], env=env, check=True)


def _write_report(out: Path, summary: dict[str, Any], tasks: Any, submission_path: Path, log_path: Path) -> Path:
    from arc_kit.core.tasks import read_json
    from arc_kit.run.report import read_loss_log, write_html_report

    return write_html_report(out / "report.html", "arc-kit demo", summary, list(tasks), read_json(submission_path),
                             read_loss_log(log_path))


def _print_table(summary: dict[str, Any], artefacts: dict[str, Path]) -> None:
    width = max(len(k) for k in summary)
    print("\n" + "=" * 72)
    for key, value in summary.items():
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {text}")
    print("-" * 72)
    for key, path in artefacts.items():
        print(f"{key}: {path}")
    print("=" * 72)
