"""Does the recipe teach? Tiny model, synthetic tasks, greedy exact-grid accuracy before and after training.

Builds the tiny model, measures greedy accuracy on held-out synthetic tasks, trains with the recipe (demo config:
full fine-tuning at LR 1e-3, batch 16, 2 epochs, flat then cosine) on CPU, exports the merged model, reloads it from the exported
folder offline and measures again. Prints progress to stderr and one JSON object last on stdout.

Task family: ``rot180`` on 3x3 grids. Rotating by 180 degrees commutes with every D8 view and colour permutation,
so the augmented training data still teaches one rule; a tiny model learns it without in-context rule inference
(which it cannot learn in minutes on 2 CPU cores).

    python scripts/bench_learning.py [--n-tasks 4000] [--eval-tasks 50] [--set train.learning_rate=2e-3 ...]
    python scripts/bench_learning.py --smoke    # CI: a model a few thousand parameters wide, 2 steps, seconds

``model_learned`` is false, and a WARNING line says so, when training did not raise the held-out accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from arc_kit.models.offline import set_offline_env

set_offline_env(hub=True)  # no hub lookups: every model here is local; set before anything imports the hub
# One thread: a tiny model gains nothing from two, and loses a lot when another process shares the cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")


from bench_models import SMOKE_RECIPE, warn_learned_nothing  # noqa: E402 - scripts/ sibling, after the environment

GOAL_ACCURACY = 0.9  # greedy exact on the held-out tasks after training (the demo's recipe reaches ~1.0)
SMOKE_ARGS = ["--n-tasks", "16", "--eval-tasks", "2", *(x for override in SMOKE_RECIPE for x in ("--set", override))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rule", default="rot180")
    parser.add_argument("--n-tasks", type=int, help="synthetic training tasks (default: the demo config's)")
    parser.add_argument("--eval-tasks", type=int, default=50)
    parser.add_argument("--out", type=Path, help="keep the run and export here (default: a temp folder)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--smoke", action="store_true",
                        help="CI: a model a few thousand parameters wide, 16 tasks, 2 steps, 2 held-out tasks")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args([*SMOKE_ARGS, *argv] if "--smoke" in argv else argv)  # flags given still win

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from arc_kit.config.run import SolverSettings
    from arc_kit.core.formats import ARC_KIT_FORMAT
    from arc_kit.core.synthetic import generate_tasks
    from arc_kit.models.tiny import resolve_base
    from arc_kit.training import export_model, load_config, resolve_config_path, run_training
    from arc_kit.training.evaluate import exact_accuracy

    work = args.out or Path(tempfile.mkdtemp(prefix="arc-bench-learning-"))
    run_dir = work / "run"
    overrides = [
        f"train.output_dir={run_dir}",
        f'data.synthetic.rules=["{args.rule}"]',
        *([f"data.synthetic.n_tasks={args.n_tasks}"] if args.n_tasks else []),
        "data.eval_fraction=0.02",
        "train.save_steps=100000",
        "train.logging_steps=10",
        *args.set,
    ]
    config = load_config(resolve_config_path("demo"), overrides)
    s = config.data.synthetic
    held_out = generate_tasks([args.rule], args.eval_tasks, seed=s.seed + 1000, sizes=s.sizes,
                              n_train=s.n_train, n_test=1)

    t0 = time.time()
    base_dir = resolve_base(config.model, run_dir)
    base = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    params = sum(p.numel() for p in base.parameters())
    before = exact_accuracy(base, tokenizer, ARC_KIT_FORMAT, held_out, SolverSettings(max_length=config.data.max_length, batch_size=16))
    print(f"before training: {before:.1%} exact on {len(held_out)} held-out tasks ({params} parameters)",
          file=sys.stderr)

    t_train = time.time()
    result = run_training(config)
    train_minutes = (time.time() - t_train) / 60
    merged = export_model(result.output_dir, work / "export")
    model = AutoModelForCausalLM.from_pretrained(merged, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(merged, local_files_only=True)
    after = exact_accuracy(model, tokenizer, ARC_KIT_FORMAT, held_out, SolverSettings(max_length=config.data.max_length, batch_size=16))
    print(f"after training + export + reload: {after:.1%} exact", file=sys.stderr)
    if after <= before:
        warn_learned_nothing(merged, f"held-out exact {after:.1%} after training, {before:.1%} before")

    print(json.dumps({
        "task_family": args.rule,
        "grid_sizes": s.sizes,
        "train_pairs_per_task": s.n_train,
        "train_tasks": s.n_tasks,
        "held_out_tasks": len(held_out),
        "model_parameters": params,
        "accuracy_before": before,
        "accuracy_after": after,
        "train_examples": result.num_train_examples,
        "steps": result.steps,
        "train_loss": result.train_loss,
        "eval_loss": result.eval_loss,
        "train_minutes": round(train_minutes, 2),
        "total_minutes": round((time.time() - t0) / 60, 2),
        "exported_dtype": "bfloat16",
        "merged_dir": str(merged),
        "log": str(result.log_path),
        "smoke": args.smoke,
        "model_learned": after > before,
        "goal_accuracy_after_at_least_0_9": after >= GOAL_ACCURACY,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
