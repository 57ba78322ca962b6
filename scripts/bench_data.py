"""How fast the training examples build, and whether memory stays flat as their number grows.

Builds N examples from the kit's synthetic generator the way a training run does (``mix.load_mix`` ->
``dataset.build_datasets`` with the Arrow cache in a fresh temporary folder and ``datasets.map(num_proc=...)``), for
each N in its own process so each peak is its own. Prints one JSON line per size, and a JSON summary last.

    python scripts/bench_data.py                 # 50k and 200k examples
    python scripts/bench_data.py --quick         # 5k and 20k (under a minute)
    python scripts/bench_data.py --sizes 1000000 --num-proc 8

Peak memory is the largest resident set (ru_maxrss) of the main process and of any one worker; "after imports" is
the main process before the build, so the build's own share is the difference.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VIEWS = 8  # augmentations per task
N_TRAIN = 3  # train pairs per task: 1 test + 3 leave-one-out examples per view
SIZES = [3, 5, 8, 10]  # grid sides drawn per grid


def rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def resident_mb() -> dict[str, float]:
    """This process's resident memory now, split into anonymous (heap: what the build holds) and file-backed (pages
    of the memory-mapped Arrow files: clean, the kernel drops them under pressure)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    kb = {k: int(fields[k].split()[0]) for k in ("RssAnon", "RssFile") if k in fields}
    return {"anon_mb": round(kb.get("RssAnon", 0) / 1024, 1), "file_mb": round(kb.get("RssFile", 0) / 1024, 1)}


def build_once(examples: int, num_proc: int) -> dict:
    """Build about ``examples`` rows in a fresh cache; the figures of this one build."""
    from arc_kit.config.training import DataSettings, SourceSettings, SyntheticSettings
    from arc_kit.core.formats import ARC_KIT_FORMAT
    from arc_kit.models.tiny import build_arc_tokenizer
    from arc_kit.training.dataset import SourcePlan, build_datasets
    from arc_kit.training.mix import load_mix

    tokenizer = build_arc_tokenizer()
    base = rss_mb(resource.RUSAGE_SELF)
    n_tasks = math.ceil(examples / (VIEWS * (N_TRAIN + 1)))
    started = time.perf_counter()
    data = DataSettings(sources=[SourceSettings(synthetic=SyntheticSettings(
        rules=["rot180", "flip_lr", "recolour", "gravity_down"], n_tasks=n_tasks, sizes=SIZES, n_train=N_TRAIN))],
        augmentations=VIEWS, held_out=[], eval_fraction=0.0)
    sources = load_mix(data, quiet=True)
    loaded = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="bench-data-") as cache:
        built = build_datasets([SourcePlan(s.name, s.tasks, s.augmentations) for s in sources], tokenizer,
                               prompt_format=ARC_KIT_FORMAT, loss_on="answer", max_length=2048, eval_fraction=0.0, cache_dir=cache, num_proc=num_proc)
        seconds = time.perf_counter() - started
        after_build = resident_mb()
        rows = len(built.train)
        tokens = int(sum(built.train.select_columns(["length"]).with_format("numpy")[:]["length"]))
        cache_mb = sum(p.stat().st_size for p in Path(cache).rglob("*") if p.is_file()) / 2**20
    return {"examples": rows, "tasks": n_tasks, "tokens": tokens, "num_proc": num_proc,
            "seconds": round(seconds, 2), "load_and_dedupe_seconds": round(loaded, 2),
            "examples_per_s": round(rows / seconds, 1),
            "peak_rss_main_mb": round(rss_mb(resource.RUSAGE_SELF), 1), "rss_after_imports_mb": round(base, 1),
            "peak_rss_worker_mb": round(rss_mb(resource.RUSAGE_CHILDREN), 1), "arrow_cache_mb": round(cache_mb, 1),
            "main_after_build": after_build}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="50000,200000", help="comma-separated example counts")
    p.add_argument("--quick", action="store_true", help="5k and 20k examples")
    p.add_argument("--smoke", action="store_true", help="CI: 200 and 400 examples")
    p.add_argument("--num-proc", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: build this many in this process
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(build_once(args.one, args.num_proc)), flush=True)
        return 0
    sizes = [200, 400] if args.smoke else [5000, 20000] if args.quick else [int(s) for s in args.sizes.split(",")]
    results = []
    for n in sizes:
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_DATASETS_OFFLINE": "1"}
        proc = subprocess.run([sys.executable, __file__, "--one", str(n), "--num-proc", str(args.num_proc)],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return proc.returncode
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    first, last = results[0], results[-1]
    print(json.dumps({
        "bench": "bench_data", "sizes": sizes, "num_proc": args.num_proc, "results": results,
        "peak_rss_main_mb": {str(r["examples"]): r["peak_rss_main_mb"] for r in results},
        "peak_rss_worker_mb": {str(r["examples"]): r["peak_rss_worker_mb"] for r in results},
        "examples_per_s": {str(r["examples"]): r["examples_per_s"] for r in results},
        "main_rss_growth_per_100k_examples_mb": round(
            (last["peak_rss_main_mb"] - first["peak_rss_main_mb"]) / max(1, last["examples"] - first["examples"])
            * 1e5, 1) if len(results) > 1 else None,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
