"""How much of a training batch is padding, with random batches and with length-grouped batches (the recipe).

Builds the training rows of real ARC tasks (default: the ARC-AGI-2 training file) as ``arc-kit train`` would, then
forms batches three ways: random order (``RandomSampler``), transformers' ``LengthGroupedSampler``, and
``arc_kit.training.dataset.LengthGroupedSampler`` (what ``train.group_by_length = true`` selects, the recipe). Padding fraction = padded tokens / all tokens in the padded batches.
Prints one JSON object last on stdout.

    python scripts/bench_padding.py [--challenges FILE --solutions FILE] [--n-tasks 200] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "arc-agi-2"


def batches_of(order: list[int], batch_size: int) -> list[list[int]]:
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--challenges", type=Path, default=DATA / "arc-agi_training_challenges.json")
    parser.add_argument("--solutions", type=Path, default=DATA / "arc-agi_training_solutions.json")
    parser.add_argument("--n-tasks", type=int, default=200, help="first N tasks of the file (0: all)")
    parser.add_argument("--augmentations", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokenizer", type=Path, help="tokenizer folder (default: the ARC tokenizer)")
    args = parser.parse_args()

    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler as HFLengthGroupedSampler

    from arc_kit.tasks import load_tasks
    from arc_kit.tiny import build_arc_tokenizer
    from arc_kit.training.dataset import LengthGroupedSampler, build_rows, padding_stats

    if args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer, local_files_only=True)
    else:
        tokenizer = build_arc_tokenizer()
    tasks = list(load_tasks(args.challenges, args.solutions))
    if args.n_tasks:
        tasks = tasks[: args.n_tasks]
    t0 = time.time()
    rows, stats = build_rows(tasks, tokenizer, augmentations=args.augmentations, max_length=args.max_length,
                             seed=args.seed)
    lengths = [r["length"] for r in rows]
    print(f"{len(rows)} rows from {len(tasks)} tasks in {time.time() - t0:.0f}s", file=sys.stderr)

    g = torch.Generator().manual_seed(args.seed)
    random_order = torch.randperm(len(lengths), generator=g).tolist()
    hf_order = list(HFLengthGroupedSampler(args.batch_size, lengths=lengths, generator=g))
    random_stats = padding_stats(lengths, batches_of(random_order, args.batch_size))
    hf_stats = padding_stats(lengths, batches_of(hf_order, args.batch_size))
    grouped_stats = padding_stats(lengths, LengthGroupedSampler(lengths, args.batch_size, args.seed).batches())
    print(json.dumps({
        "source": str(args.challenges),
        "tasks": len(tasks),
        "rows": len(rows),
        "augmentations": args.augmentations,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "skipped_too_long": stats.skipped_too_long,
        "random_padding_fraction": round(random_stats["padding_fraction"], 4),
        "transformers_grouped_padding_fraction": round(hf_stats["padding_fraction"], 4),
        "grouped_padding_fraction": round(grouped_stats["padding_fraction"], 4),
        "grouped_padded_over_all_tokens": f"{grouped_stats['padding_tokens']}/{grouped_stats['all_tokens']}",
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
