"""Batched greedy decoding (arc_kit.inference.GreedyDecoder) against `model.generate` one test input at a time.

Same model, same prompts, same bound per prompt (the task's largest answer + end tokens), greedy: the two must give
identical tokens, hence identical grids. Prints a few lines, then one JSON object last.

Input set (fair for both sides): the N test inputs with the shortest prompts in the challenges file (default:
ARC-AGI-1 evaluation, N=32). A random tiny model never emits its end token, so every prompt runs to its bound on
both sides; the bound comes from the task, as in the real runner.

    python scripts/bench_inference.py [--model DIR] [--count 32] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

DEFAULT_CHALLENGES = Path(__file__).resolve().parents[2] / "shared/data/arc-agi-1/arc-agi_evaluation_challenges.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="weights folder (default: a fresh tiny model)")
    parser.add_argument("--challenges", type=Path, default=DEFAULT_CHALLENGES)
    parser.add_argument("--count", type=int, default=32, help="test inputs (shortest prompts first)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--cpu-threads", type=int, default=1, help="torch threads on CPU, both sides")
    args = parser.parse_args()

    from arc_kit.inference import ArcSolver, generate_one_by_one, load_model
    from arc_kit.settings import InferenceConfig
    from arc_kit.tasks import load_tasks
    from arc_kit.text import ParseError, answer_from_generation

    model_dir = args.model
    if model_dir is None:
        from arc_kit.tiny import write_tiny_model

        model_dir = write_tiny_model(Path(tempfile.mkdtemp(prefix="arc-kit-tiny-")))
    config = InferenceConfig(batch_size=args.batch_size, cpu_threads=args.cpu_threads or None)
    loaded = load_model(model_dir, config)
    solver = ArcSolver(loaded, config)
    requests = [r for task in load_tasks(args.challenges) for r in solver.requests_for(task)[0]]
    requests = sorted(requests, key=lambda r: (len(r.prompt_ids), str(r.key)))[: args.count]
    print(f"{len(requests)} test inputs, prompts {len(requests[0].prompt_ids)}-{len(requests[-1].prompt_ids)} "
          f"tokens, bounds {min(r.max_new_tokens for r in requests)}-{max(r.max_new_tokens for r in requests)}")

    def grid_or_error(token_ids: list[int]) -> object:
        try:
            return answer_from_generation(loaded.tokenizer.decode(token_ids, skip_special_tokens=False))
        except ParseError as e:
            return f"ParseError: {e}"

    began = time.time()
    batched = solver.decoder.decode(requests)
    batched_s = time.time() - began
    began = time.time()
    reference = generate_one_by_one(loaded.model, loaded.tokenizer, requests)
    reference_s = time.time() - began

    batched_tokens = sum(len(g.token_ids) for g in batched)
    reference_tokens = sum(len(g.token_ids) for g in reference)
    same_tokens = sum(a.token_ids == b.token_ids for a, b in zip(batched, reference, strict=True))
    same_grids = sum(grid_or_error(a.token_ids) == grid_or_error(b.token_ids)
                     for a, b in zip(batched, reference, strict=True))
    result = {
        "model": str(model_dir),
        "inputs": len(requests),
        "input_set": f"{args.count} shortest prompts of {args.challenges.name}",
        "batch_size": args.batch_size,
        "cpu_threads": args.cpu_threads,
        "identical_tokens": same_tokens,
        "identical_grids": same_grids,
        "all_identical": same_tokens == len(requests) and same_grids == len(requests),
        "batched": {"tokens": batched_tokens, "seconds": round(batched_s, 3),
                    "tokens_per_second": round(batched_tokens / batched_s, 1)},
        "generate_one_at_a_time": {"tokens": reference_tokens, "seconds": round(reference_s, 3),
                                   "tokens_per_second": round(reference_tokens / reference_s, 1)},
    }
    result["speedup"] = round(result["batched"]["tokens_per_second"]
                              / result["generate_one_at_a_time"]["tokens_per_second"], 2)
    print(f"batched {result['batched']['tokens_per_second']} tokens/s, generate one at a time "
          f"{result['generate_one_at_a_time']['tokens_per_second']} tokens/s: {result['speedup']}x; "
          f"identical {same_tokens}/{len(requests)}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
