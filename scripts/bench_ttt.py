"""Test-time training against plain greedy, on one pre-trained tiny model and held-out tasks.

CPU, the tiny model pre-trained from scratch (full fine-tune, the demo recipe) on a mix of rules whose parameter
must be read from the demonstrations, then held-out tasks of two of those rules and of one rule never seen in
pre-training. Each row runs the real runner (``run_submission``) with solutions, so its score is the top-2 score
(the ARC Prize metric):

1. greedy, no TTT (one view, no re-scoring);
2. TTT + greedy (the same solver after a fresh LoRA is trained on the task's demonstration pairs);
3. TTT + depth-first search + re-scoring under a few views.

Columns: top-2 score on the seen rules and on the unseen rule, seconds per task. Prints a line per row, then one
JSON object last.

The rules (``arc_kit.core.synthetic.COLOUR_MAPS``) are colour maps on 3x3 grids, 0 kept, each task with its own map:
``identity``, ``swap`` (two of the task's four colours trade places) and ``recolour`` (a random permutation of
1-9) in pre-training; held out: ``swap`` and ``recolour`` tasks never seen, and ``fill`` (every colour becomes one
colour), a rule never seen. Every colour of a test input appears in a demonstration, and at least one of them
changes, so the demonstrations decide the answer and copying the input is wrong. TTT and the solver use geometric
views only (``colour_views`` off): a colour permutation would change the very map TTT is teaching.

What the tiny model can read in context depends on how long it was pre-trained: once it learns to look a colour
up in the demonstrations (an induction head), greedy alone solves the held-out tasks and TTT has nothing to add.
Before that it carries each cell's colour to the right place but cannot read the map: greedy is near zero and TTT
writes the map into the LoRA. With the benchmarks' recipe (``bench_models.BENCH_RECIPE``: 4 layers, 8 heads, the
loss on every output) the training loss sits at 0.65-0.9 from step 100 to step 1500, so the default of 700 steps
is well before that point. Measured on 2 shared cores (load average 5-8), 24 tasks:

- 700 steps (default): greedy 0.0, TTT + greedy 1.0, TTT + DFS + re-scoring 1.0; 0.24 / 16.7 / 12.2 s a task
  wall time on the loaded machine (TTT's loss 0.81 -> 0.010 over 128 rows).
- 1500 steps (a checkpoint of one run): greedy 0.04.

That is the ARC story in small: TTT pays where the model cannot yet read the rule from the prompt.

TTT settings (``TTTSettings``'s defaults are for Qwen-class models, LR 5e-5): the tiny model was pre-trained at
1e-3 with full fine-tuning and a rank-32 LoRA at 5e-5 does not move it in a hundred steps, so the bench trains at
1e-3 (3e-3 was worse) on 128 rows, one epoch.

    python scripts/bench_ttt.py [--tasks 24] [--pretrain-steps 1500] [--ttt-lr 1e-3] [--cache DIR] [--model DIR]
    python scripts/bench_ttt.py --smoke --cache DIR    # CI: a model trained two steps, 3 tasks, seconds

Goal keys (booleans) in the JSON; ``model_learned`` is false, and a WARNING line says so, when every row scores 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from arc_kit.models.offline import set_offline_env

set_offline_env(hub=True)  # no hub lookups: every model here is local; set before anything imports the hub
os.environ.setdefault("OMP_NUM_THREADS", "1")  # the tiny model is fastest on one thread

from bench_models import cached_model, default_cache, warn_learned_nothing  # noqa: E402 - scripts/ sibling, after the environment is set

PRETRAIN = ["identity", "swap", "recolour"]  # identity teaches the model to carry a cell's colour to the output
SEEN = ["swap", "recolour"]
UNSEEN = ["fill"]
SIZES = [3]
N_TRAIN = 3
PRETRAIN_TASKS = 2000
SMOKE_PRETRAIN_TASKS = 16
SMOKE_ARGS = ["--tasks", "3", "--ttt-samples", "4", "--views", "2", "--scoring-views", "2"]
GENERATOR = "colour-maps-v3"  # change when the rules change, so the cached model is retrained
TRAIN_OVERRIDES = ("data.synthetic.rules=[]", "data.synthetic.n_tasks=0", "train.length_group_batches=64",
                   "train.max_steps=700")


def make_tasks(rules: list[str], n: int, seed: int, prefix: str) -> list:
    """``n`` colour-map tasks (``arc_kit.core.synthetic.colour_map_tasks``), rules in turn."""
    from arc_kit.core.synthetic import colour_map_tasks

    return colour_map_tasks(rules, n, seed, prefix, sizes=SIZES, n_train=N_TRAIN)


def write_tasks(tasks: list, folder: Path, prefix: str) -> tuple[Path, Path]:
    from arc_kit.core.tasks import write_task_files

    folder.mkdir(parents=True, exist_ok=True)
    challenges, solutions = folder / f"{prefix}_challenges.json", folder / f"{prefix}_solutions.json"
    write_task_files(tasks, challenges, solutions)
    return challenges, solutions


def trained_model(cache: Path, max_steps: int | None = None, smoke: bool = False) -> Path:
    """The exported merged model, pre-trained once per (rules, overrides) and kept in ``cache``; ``smoke``: the
    smoke recipe's on a few tasks."""
    overrides = list(TRAIN_OVERRIDES) + ([f"train.max_steps={max_steps}"] if max_steps else [])
    count = SMOKE_PRETRAIN_TASKS if smoke else PRETRAIN_TASKS

    def prepare(folder: Path) -> list[str]:
        challenges, solutions = write_tasks(make_tasks(PRETRAIN, count, 0, "pre"), folder / "data", "pre")
        return [f"data.challenges={json.dumps([str(challenges)])}", f"data.solutions={json.dumps([str(solutions)])}"]

    spec = "\n".join([GENERATOR, json.dumps([PRETRAIN, SIZES, N_TRAIN, count])])
    return cached_model(cache, "ttt-bench", overrides, key_extra=spec, prepare=prepare, smoke=smoke)


def _group_score(report: object, ids: list[str]) -> float:
    """Top-2 score over ``ids`` (mean over tasks of the share of right test inputs)."""
    scores = []
    for tid in ids:
        record = report.per_task.get(tid)
        correct = record.correct if record is not None else None
        scores.append(sum(correct) / len(correct) if correct else 0.0)
    return round(sum(scores) / len(scores), 4) if scores else 0.0


def run_row(name: str, model: Path, data: tuple[Path, Path], groups: dict[str, list[str]], out: Path,
            solver: object, ttt: object) -> dict:
    from arc_kit.config.run import RunSettings
    from arc_kit.run.job import RunJob
    from arc_kit.run.runner import run_submission

    began = time.time()
    report = run_submission(RunJob(
        model_dir=model, challenges=data[0], output=out / name.replace(" ", "_") / "submission.json",
        solutions=data[1], run=RunSettings(workers=1, quick_first=False), solver=solver, ttt=ttt, progress=False))
    trained = [r.ttt for r in report.per_task.values() if r.ttt and r.ttt.get("steps")]
    row = {
        "row": name,
        "top2_score": round(report.score or 0.0, 4),
        **{f"top2_{group}": _group_score(report, ids) for group, ids in groups.items()},
        "seconds_per_task": round(report.seconds / max(1, report.tasks), 3),
        "wall_seconds": round(time.time() - began, 1),
        "ttt_steps": round(sum(t["steps"] for t in trained) / len(trained), 1) if trained else 0,
        "ttt_seconds_per_task": round(sum(t["seconds"] for t in trained) / len(trained), 3) if trained else 0.0,
        "ttt_loss_first_last": [round(sum(t["loss_first"] or 0 for t in trained) / len(trained), 4),
                                round(sum(t["loss_last"] or 0 for t in trained) / len(trained), 4)]
        if trained else None,
        "model_error": report.model_error,
        "errors": len(report.errors),
    }
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=12, help="held-out tasks, the rules taken in turn")
    parser.add_argument("--cache", type=Path, default=default_cache(),
                        help="trained bench models (default: %(default)s)")
    parser.add_argument("--model", type=Path, help="use this weights folder instead of pre-training one")
    parser.add_argument("--pretrain-steps", type=int, help="override the pre-training's max_steps (700)")
    parser.add_argument("--ttt-lr", type=float, default=1e-3)
    parser.add_argument("--ttt-samples", type=int, default=128)
    parser.add_argument("--ttt-epochs", type=int, default=1)
    parser.add_argument("--ttt-rank", type=int, default=32)
    parser.add_argument("--ttt-embeddings", action=argparse.BooleanOptionalAction, default=False,
                        help="also train embed_tokens/lm_head copies")
    parser.add_argument("--colour-views", action=argparse.BooleanOptionalAction, default=False,
                        help="permute colours in TTT rows and solver views (off: the rules are colour maps)")
    parser.add_argument("--views", type=int, default=4, help="row 3: search views")
    parser.add_argument("--scoring-views", type=int, default=4, help="row 3: re-scoring views")
    parser.add_argument("--p", type=float, default=0.1, help="row 3: DFS probability threshold")
    parser.add_argument("--rows", default="1,2,3", help="which rows to run (comma-separated numbers)")
    parser.add_argument("--smoke", action="store_true",
                        help=f"CI: every row on a model trained a few steps (cached in --cache), {' '.join(SMOKE_ARGS)}")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args([*SMOKE_ARGS, *argv] if "--smoke" in argv else argv)  # flags given still win

    from arc_kit.config.lora import LoraSettings
    from arc_kit.config.run import SolverSettings, TTTSettings

    model = args.model or trained_model(args.cache, args.pretrain_steps, smoke=args.smoke)
    out = Path(tempfile.mkdtemp(prefix="arc-kit-bench-ttt-"))
    tasks = make_tasks(SEEN + UNSEEN, args.tasks, 4321, "heldout")
    groups = {"seen": [t.task_id for t in tasks if t.task_id.split("-")[1] in SEEN],
              "unseen": [t.task_id for t in tasks if t.task_id.split("-")[1] in UNSEEN]}
    data = write_tasks(tasks, out / "data", "heldout")
    common = dict(device="cpu", cpu_threads=1, colour_views=args.colour_views)
    ttt = TTTSettings(learning_rate=args.ttt_lr, max_samples=args.ttt_samples, epochs=args.ttt_epochs,
                      lora=LoraSettings(r=args.ttt_rank, alpha=args.ttt_rank, train_embeddings=args.ttt_embeddings),
                      max_length=512, colour_views=args.colour_views)
    plan = {
        "1": ("greedy, no TTT", SolverSettings(mode="greedy", scoring_views=0, views=1, **common),
              TTTSettings(enabled=False)),
        "2": ("TTT + greedy", SolverSettings(mode="greedy", scoring_views=0, views=1, **common), ttt),
        "3": ("TTT + dfs + re-scoring", SolverSettings(mode="dfs", views=args.views, min_probability=args.p,
                                                       scoring_views=args.scoring_views, **common), ttt),
    }
    rows = [run_row(*plan[k][:1], model, data, groups, out, *plan[k][1:]) for k in args.rows.split(",")]
    by_name = {r["row"]: r for r in rows}
    summary = {
        "model": str(model), "pretrain_rules": PRETRAIN,
        "pretrain_steps": None if args.model or args.smoke else args.pretrain_steps or int(TRAIN_OVERRIDES[-1].split("=")[1]),
        "colour_views": args.colour_views, "tasks": args.tasks, "seen_rules": SEEN, "unseen_rules": UNSEEN, "sizes": SIZES,
        "ttt": {"learning_rate": ttt.learning_rate, "max_samples": ttt.max_samples, "epochs": ttt.epochs,
                "lora_rank": ttt.lora.r, "train_embeddings": ttt.lora.train_embeddings},
        "views": args.views, "scoring_views": args.scoring_views, "p": args.p, "rows": rows,
        "smoke": args.smoke,
        "model_learned": any(r["top2_score"] > 0 for r in rows),
        "goal_ttt_rows_score": all(r["top2_score"] > 0 for r in rows if r["row"].startswith("TTT")),
    }
    if not summary["model_learned"]:
        warn_learned_nothing(model, "every row scores 0, with TTT too")
    if "greedy, no TTT" in by_name and "TTT + greedy" in by_name:
        gain = by_name["TTT + greedy"]["top2_score"] - by_name["greedy, no TTT"]["top2_score"]
        summary["ttt_gain_points"] = round(100 * gain, 1)
        summary["goal_ttt_plus_40_points"] = gain >= 0.4
        summary["goal_at_most_60_seconds_per_task"] = all(r["seconds_per_task"] <= 60 for r in rows)
    shutil.rmtree(out, ignore_errors=True)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
