"""Batched greedy decoding (arc_kit.solve.decoding.GreedyDecoder) against `model.generate` one test input at a time.

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_CHALLENGES = Path(__file__).resolve().parents[2] / "shared/data/arc-agi-1/arc-agi_evaluation_challenges.json"


def generate_one_by_one(model: Any, tokenizer: Any, requests: Sequence[Any]) -> list[Any]:
    """The reference: ``model.generate`` on one prompt at a time, greedy, same bound and end tokens."""
    import torch
    from transformers import GenerationConfig

    from arc_kit.solve.decoding import Generation
    from arc_kit.solve.loading import end_token_ids

    end_ids = end_token_ids(tokenizer, model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_ids[0]
    out = []
    device = next(model.parameters()).device
    for r in requests:
        ids = torch.tensor([r.prompt_ids], dtype=torch.long, device=device)
        gen_config = GenerationConfig(max_new_tokens=max(1, r.max_new_tokens), do_sample=False, num_beams=1,
                                      eos_token_id=end_ids, pad_token_id=pad_id, use_cache=True)
        with torch.inference_mode():
            seq = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=gen_config)
        tokens = seq[0, ids.shape[1] :].tolist()
        cut = next((k for k, t in enumerate(tokens) if t in set(end_ids)), None)
        out.append(Generation(r.key, tokens[: cut + 1] if cut is not None else tokens, cut is not None))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="weights folder (default: a fresh tiny model)")
    parser.add_argument("--challenges", type=Path, default=DEFAULT_CHALLENGES)
    parser.add_argument("--count", type=int, default=32, help="test inputs (shortest prompts first)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--cpu-threads", type=int, default=1, help="torch threads on CPU, both sides")
    args = parser.parse_args()

    from arc_kit.augment import View
    from arc_kit.settings import SolverConfig
    from arc_kit.solve.decoding import DecodeRequest, GreedyDecoder
    from arc_kit.solve.loading import load_model
    from arc_kit.solve.prompts import task_prompts
    from arc_kit.tasks import load_tasks
    from arc_kit.text import ParseError, answer_from_generation

    model_dir = args.model
    if model_dir is None:
        from arc_kit.tiny import write_tiny_model

        model_dir = write_tiny_model(Path(tempfile.mkdtemp(prefix="arc-kit-tiny-")))
    config = SolverConfig(batch_size=args.batch_size, cpu_threads=args.cpu_threads or None)
    loaded = load_model(model_dir, config)
    decoder = GreedyDecoder(loaded.model, loaded.tokenizer, config.batch_size, loaded.device)
    requests = [DecodeRequest(p, p.token_ids, p.max_new_tokens) for task in load_tasks(args.challenges)
                for p in task_prompts(task, loaded.tokenizer, [View()], config.max_length)]
    requests = sorted(requests, key=lambda r: (len(r.prompt_ids), str(r.key)))[: args.count]
    print(f"{len(requests)} test inputs, prompts {len(requests[0].prompt_ids)}-{len(requests[-1].prompt_ids)} "
          f"tokens, bounds {min(r.max_new_tokens for r in requests)}-{max(r.max_new_tokens for r in requests)}")

    def grid_or_error(token_ids: list[int]) -> object:
        try:
            return answer_from_generation(loaded.tokenizer.decode(token_ids, skip_special_tokens=False))
        except ParseError as e:
            return f"ParseError: {e}"

    began = time.time()
    batched = decoder.decode(requests)
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
