"""How fast the training examples build, and whether memory stays flat as their number grows.

Three sources, each built the way a training run builds it (``mix.load_mix`` with the default held-out guard ->
``dataset.build_datasets`` with the Arrow cache in a fresh temporary folder and ``datasets.map(num_proc=...)``), each
size in its own process so each peak is its own:

- synthetic: N examples from the kit's generator (the arc-kit format, 8 views, leave-one-out; no held-out guard);
- chat: N rows in NVARC's augmented layout (a ``datasets`` folder saved with ``save_to_disk``, rows {puzzle_name,
  messages}, 5 pairs each, augmented views of 1 puzzle in 32), used as given in the nvarc format with the loss on
  every output, NVARC's 16-token tokenizer: one example per row;
- jsonl: N problems in BARC's JSON-lines layout ({source, examples, seeds}, 4 pairs each) read as tasks (the
  arc-kit format, 1 view, leave-one-out: 4 examples per problem).

Prints one JSON line per build, and a JSON summary last.

    python scripts/bench_data.py                             # synthetic 50k,200k; chat 100k,1M; jsonl 100k
    python scripts/bench_data.py --only chat,jsonl           # the corpora alone (about an hour on 2 cores)
    python scripts/bench_data.py --quick                     # a tenth of each (minutes)
    python scripts/bench_data.py --smoke                     # every source at tiny sizes (seconds)
    python scripts/bench_data.py --chat-rows 1000000 --num-proc 8   # that source alone

Peak memory is the largest resident set of the main process (VmHWM) and of any one worker (ru_maxrss of the
children); "after imports" is the main process before the build, so the build's own share is the difference. Each
corpus is written into a temporary folder by a process of its own before the measured process starts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VIEWS = 8  # synthetic: augmentations per task
N_TRAIN = 3  # synthetic: train pairs per task: 1 test + 3 leave-one-out examples per view
SIZES = [3, 5, 8, 10]  # synthetic: grid sides drawn per grid
CORPUS_SIZES = [3, 4, 5, 6]  # chat and jsonl grids: NVARC-like rows of a few hundred tokens
RULES = ["rot180", "flip_lr", "recolour", "gravity_down"]
ROWS_PER_PUZZLE = 32  # chat: augmented rows per puzzle (NVARC: 16-32 per synthetic puzzle)
SOURCES = ("synthetic", "chat", "jsonl")
FULL = {"synthetic": [50_000, 200_000], "chat": [100_000, 1_000_000], "jsonl": [100_000]}
QUICK = {"synthetic": [5_000, 20_000], "chat": [10_000, 100_000], "jsonl": [10_000]}
SMOKE = {"synthetic": [300, 600], "chat": [200, 400], "jsonl": [100]}


def peak_rss_mb() -> float:
    """This process's peak resident set since it started (VmHWM). Not ru_maxrss: Linux carries a process's peak
    over an exec, so a child of a large parent would report the parent's size."""
    return _status_kb("VmHWM") / 1024


def worker_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest waited-for child, KiB


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def resident_mb() -> dict[str, float]:
    """This process's resident memory now, split into anonymous (heap: what the build holds) and file-backed (pages
    of the memory-mapped Arrow files: clean, the kernel drops them under pressure)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    kb = {k: int(fields[k].split()[0]) for k in ("RssAnon", "RssFile") if k in fields}
    return {"anon_mb": round(kb.get("RssAnon", 0) / 1024, 1), "file_mb": round(kb.get("RssFile", 0) / 1024, 1)}


# ---------------------------------------------------------------------------------------------------------------
# The corpora, in their published layouts


def write_chat_corpus(folder: Path, rows: int) -> None:
    """``rows`` chat rows in NVARC's augmented layout: each puzzle's first row as it is, the others a random D8
    transform, colour permutation and pair order of it (as NVARC's build_datasets.py makes them)."""
    from datasets import Dataset

    from arc_kit.core.augment import View
    from arc_kit.core.synthetic import iter_tasks
    from arc_kit.training.readers import task_to_messages

    def generate():
        puzzle = None
        for k in range(rows):
            if k % ROWS_PER_PUZZLE == 0:
                [puzzle] = iter_tasks(RULES, [k // ROWS_PER_PUZZLE], 0, CORPUS_SIZES, 4, 1)
            task = puzzle
            if k % ROWS_PER_PUZZLE:
                rng = random.Random(k)
                colours = list(range(10))
                rng.shuffle(colours)
                order = list(range(len(puzzle.train)))
                rng.shuffle(order)
                task = View(rng.randrange(8), tuple(colours), tuple(order)).apply_task(puzzle)
            yield {"puzzle_name": puzzle.task_id, "messages": task_to_messages(task)}

    with tempfile.TemporaryDirectory(prefix="bench-chat-gen-") as scratch:
        Dataset.from_generator(generate, cache_dir=scratch).save_to_disk(str(folder / "nvarc_bench"))


def write_jsonl_corpus(path: Path, problems: int) -> None:
    """``problems`` lines in BARC's layout: {source, examples: [[input, output], ...], seeds}."""
    from arc_kit.core.synthetic import iter_tasks

    with open(path, "w", encoding="utf-8") as f:
        for task in iter_tasks(RULES, range(problems), 1, CORPUS_SIZES, N_TRAIN, 1):
            examples = [[[list(r) for r in p.input], [list(r) for r in p.output]] for p in (*task.train, *task.test)]
            f.write(json.dumps({"source": f"# {task.task_id}", "examples": examples, "seeds": []}) + "\n")


# ---------------------------------------------------------------------------------------------------------------
# One measured build


def build_once(source: str, size: int, num_proc: int, corpus: str) -> dict:
    """Build one source of ``size`` (examples for synthetic, rows or problems for the corpora) in a fresh cache;
    the figures of this one build."""
    from arc_kit.config.training import DataSettings, SourceSettings, SyntheticSettings
    from arc_kit.core.formats import ARC_KIT_FORMAT, NVARC_FORMAT
    from arc_kit.models.tiny import build_arc_tokenizer
    from arc_kit.models.vocab import nvarc_tokenizer
    from arc_kit.training.dataset import SourcePlan, build_datasets, column_sum
    from arc_kit.training.mix import load_mix

    tokenizer, prompt_format, loss_on = build_arc_tokenizer(), ARC_KIT_FORMAT, "answer"
    if source == "synthetic":
        n_tasks = math.ceil(size / (VIEWS * (N_TRAIN + 1)))
        data = DataSettings(sources=[SourceSettings(synthetic=SyntheticSettings(
            rules=RULES, n_tasks=n_tasks, sizes=SIZES, n_train=N_TRAIN))], augmentations=VIEWS, held_out=[])
    elif source == "chat":
        data = DataSettings(sources=[SourceSettings(path=corpus, kind="chat", rows="as_given")])
        tokenizer, prompt_format, loss_on = nvarc_tokenizer(), NVARC_FORMAT, "all_outputs"
    else:
        data = DataSettings(sources=[SourceSettings(path=corpus, kind="jsonl")], augmentations=1)
    data.eval_fraction, data.num_proc = 0.0, num_proc  # corpora: the default held_out, the guard's cost included
    base = peak_rss_mb()
    with tempfile.TemporaryDirectory(prefix="bench-data-") as cache:
        started = time.perf_counter()
        sources = load_mix(data, quiet=True, work_dir=cache)
        loaded = time.perf_counter() - started
        built = build_datasets([SourcePlan(s.name, s.tasks, s.augmentations, s.weight, s.as_given) for s in sources],
                               tokenizer, prompt_format=prompt_format, loss_on=loss_on, max_length=2048,
                               eval_fraction=0.0, cache_dir=cache, num_proc=num_proc)
        seconds = time.perf_counter() - started
        after_build = resident_mb()
        rows = len(built.train)
        tokens = column_sum(built.train, "length")
        first = built.train[0]
        learnt = sum(label != -100 for label in first["labels"])
        cache_mb = sum(p.stat().st_size for p in Path(cache).rglob("*") if p.is_file()) / 2**20
    [src] = sources
    return {"source": source, "size": size, "tasks": len(src.tasks), "examples": rows, "tokens": tokens,
            "refused_held_out": len(src.refused_held_out), "bad_rows": src.bad_rows, "num_proc": num_proc,
            "seconds": round(seconds, 2), "load_and_guard_seconds": round(loaded, 2),
            "examples_per_s": round(rows / seconds, 1),
            "peak_rss_main_mb": round(peak_rss_mb(), 1), "rss_after_imports_mb": round(base, 1),
            "peak_rss_worker_mb": round(worker_peak_rss_mb(), 1), "arrow_cache_mb": round(cache_mb, 1),
            "main_after_build": after_build,
            "first_row": {"tokens": len(first["input_ids"]), "learnt_tokens": int(learnt),
                          "text_head": first["text"][:60]}}


def _sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", help=f"comma-separated sources ({', '.join(SOURCES)}); default: those whose sizes are "
                                  "given, else all")
    p.add_argument("--sizes", help="synthetic: comma-separated example counts (default 50000,200000)")
    p.add_argument("--chat-rows", help="chat: comma-separated row counts (default 100000,1000000)")
    p.add_argument("--jsonl-problems", help="jsonl: comma-separated problem counts (default 100000)")
    p.add_argument("--quick", action="store_true", help="a tenth of the default sizes")
    p.add_argument("--smoke", action="store_true", help="every source at tiny sizes, the same JSON (seconds)")
    p.add_argument("--num-proc", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: SOURCE:SIZE, built in this process
    p.add_argument("--write", help=argparse.SUPPRESS)  # internal: SOURCE:SIZE, written to --corpus
    p.add_argument("--corpus", default="", help=argparse.SUPPRESS)  # internal: the written corpus
    args = p.parse_args(argv)
    if args.one:
        source, size = args.one.split(":")
        print(json.dumps(build_once(source, int(size), args.num_proc, args.corpus)), flush=True)
        return 0
    if args.write:
        source, size = args.write.split(":")
        (write_chat_corpus if source == "chat" else write_jsonl_corpus)(Path(args.corpus), int(size))
        return 0
    given = {"synthetic": args.sizes, "chat": args.chat_rows, "jsonl": args.jsonl_problems}
    only = [s for s in (args.only or ",".join(s for s in SOURCES if given[s]) or ",".join(SOURCES)).split(",") if s]
    unknown = sorted(set(only) - set(SOURCES))
    if unknown:
        p.error(f"--only: unknown source(s) {unknown}; known: {', '.join(SOURCES)}")
    plan = SMOKE if args.smoke else QUICK if args.quick else FULL
    sizes = {s: _sizes(given[s]) if given[s] else plan[s] for s in only}
    results = []
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_DATASETS_OFFLINE": "1"}
    with tempfile.TemporaryDirectory(prefix="bench-corpus-") as scratch:
        for source, counts in sizes.items():
            for n in counts:
                corpus = Path(scratch) / (f"{source}-{n}" + (".jsonl" if source == "jsonl" else ""))
                steps = [["--write", f"{source}:{n}"]] if source != "synthetic" else []  # in its own process too
                for step in [*steps, ["--one", f"{source}:{n}"]]:
                    proc = subprocess.run([sys.executable, __file__, *step, "--num-proc", str(args.num_proc),
                                           "--corpus", str(corpus)], capture_output=True, text=True, env=env)
                    if proc.returncode != 0:
                        print(proc.stderr[-2000:], file=sys.stderr)
                        return proc.returncode
                results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                print(json.dumps(results[-1]), flush=True)
    print(json.dumps(summary(results, sizes, args.num_proc)))
    return 0


RSS_GROWTH_GOAL = 1.5  # chat: the main process's peak at the largest size over the smallest (100k -> 1M rows)


def summary(results: list[dict], sizes: dict[str, list[int]], num_proc: int) -> dict:
    """Per source: peak main RSS, examples/s and build seconds by size, and the peak's growth from the smallest to
    the largest size. The goal (``goal_chat_peak_rss_main_at_most_1_5x``): at most 1.5x for chat rows; None where
    chat was not measured at two sizes."""
    out: dict = {"bench": "bench_data", "sizes": sizes, "num_proc": num_proc, "results": results}
    for key in ("peak_rss_main_mb", "peak_rss_worker_mb", "examples_per_s", "seconds"):
        out[key] = {f"{r['source']}:{r['size']}": r[key] for r in results}
    growth = {}
    for source in sizes:
        mine = [r for r in results if r["source"] == source]
        if len(mine) > 1:
            growth[source] = mine[-1]["peak_rss_main_mb"] / mine[0]["peak_rss_main_mb"]
    out["peak_rss_main_growth"] = {s: round(g, 3) for s, g in growth.items()}  # largest size's peak / smallest's
    out["goal_chat_peak_rss_main_at_most_1_5x"] = growth["chat"] <= RSS_GROWTH_GOAL if "chat" in growth else None
    return out


if __name__ == "__main__":
    sys.exit(main())
