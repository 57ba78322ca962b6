"""Decode speed: the kit's greedy decoder (in-place and dynamic KV cache) against transformers' ``generate``.

The fair peer is ``generate`` on the same batch, left-padded, greedy; ``generate`` one prompt at a time is the naive
reference. Each method decodes the same batch: ``--batch`` random ARC-token prompts whose lengths step down from the
context (so left padding is exercised), ``--new-tokens`` tokens each. End tokens are switched off on every side, so
every row runs every step: what differs is the cache and the loop, not how soon rows finish.

Timing: process time (``time.process_time``, CPU seconds of this process, one torch thread), so other jobs on a
shared machine cost little accuracy. A forward hook stamps the end of every model call: prefill = from the call's
start to the end of the last multi-token forward; decode ms per step = the time after it over the single-token
steps (one step = one token for each row; one at a time sums the rows' steps). Outputs are compared token for token
with ``generate`` batched, and the in-place cache's NLLs with the dynamic cache's.

Models are random and built in code (``arc_kit.models.tiny``): ``tiny`` (0.4M parameters) and ``25m`` (a Llama-shaped
24M: hidden 512, 8 layers, 8 query / 2 KV heads, as Qwen3's 4:1 grouping). Prints a line per model and context,
then one JSON object last.

    python scripts/bench_inference.py                 # tiny and 25m at 1k/2k/4k/8k, batch 8, 32 new tokens
    python scripts/bench_inference.py --quick         # tiny at 256/512, 8 new tokens (seconds)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from arc_kit.config.training import ModelSettings
from arc_kit.models.tiny import TinyModelShape, tiny_shape

# Room for 8k prompts + answers (the tiny model's default of 8,192 positions would draw a warning at 8k + 32).
MODELS = {
    "tiny": dataclasses.replace(tiny_shape(ModelSettings()), max_position_embeddings=16384),
    "25m": TinyModelShape(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
                          num_key_value_heads=2, seed=0, max_position_embeddings=16384),
}
METHODS = ("kit_inplace", "kit_dynamic", "generate_batched", "generate_one_at_a_time")


def generate_one_by_one(model: Any, tokenizer: Any, requests: Sequence[Any]) -> list[Any]:
    """The reference: ``model.generate`` on one prompt at a time, greedy, same bound and end tokens."""
    from arc_kit.models.tokens import end_token_ids

    return [_generate(model, tokenizer, [r], end_token_ids(tokenizer, model))[0] for r in requests]


def generate_batched(model: Any, tokenizer: Any, requests: Sequence[Any], end_ids: Sequence[int]) -> list[Any]:
    """The fair peer: ``model.generate`` on the whole batch, left-padded, greedy, the largest bound."""
    return _generate(model, tokenizer, requests, end_ids)


def _generate(model: Any, tokenizer: Any, requests: Sequence[Any], end_ids: Sequence[int]) -> list[Any]:
    """``generate`` on ``requests`` as one left-padded batch; each row truncated after its first end token."""
    import torch
    from transformers import GenerationConfig

    from arc_kit.solve.decoding import Generation

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_ids[0]
    device = next(model.parameters()).device
    width = max(len(r.prompt_ids) for r in requests)
    ids = torch.full((len(requests), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, r in enumerate(requests):
        ids[row, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids, dtype=torch.long)
        mask[row, width - len(r.prompt_ids) :] = 1
    gen_config = GenerationConfig(max_new_tokens=max(max(1, r.max_new_tokens) for r in requests), do_sample=False,
                                  num_beams=1, eos_token_id=list(end_ids) or None, pad_token_id=pad_id,
                                  use_cache=True)
    with torch.inference_mode():
        seq = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=gen_config)
    out = []
    for row, r in enumerate(requests):
        tokens = seq[row, width:].tolist()[: max(1, r.max_new_tokens)]
        first_end = next((k for k, t in enumerate(tokens) if t in set(end_ids)), None)
        finished = first_end is not None
        out.append(Generation(r.key, tokens[: first_end + 1] if finished else tokens, finished))
    return out


class Timing:
    """Process-time stamps of one method's run: (query length, end) of every forward, folded per call.

    A plain class, not a dataclass: the tests load this script by path, outside ``sys.modules``."""

    def __init__(self) -> None:
        self.prefill_seconds = 0.0
        self.decode_seconds = 0.0
        self.steps = 0  # single-token forwards (one per new token after the first, per call)
        self.stamps: list[tuple[int, float]] = []

    def close_call(self, began: float) -> None:
        """Fold one call's stamps in: prefill up to the last multi-token forward, decode after it."""
        last_prefill = max((k for k, (width, _) in enumerate(self.stamps) if width > 1), default=0)
        prefill_end = self.stamps[last_prefill][1]
        self.prefill_seconds += prefill_end - began
        self.decode_seconds += self.stamps[-1][1] - prefill_end
        self.steps += len(self.stamps) - 1 - last_prefill
        self.stamps = []

    def ms_per_step(self, calls: int) -> float:
        """Decode milliseconds for one token of every row (``calls`` calls ran the rows side by side or apart)."""
        return 1000 * self.decode_seconds / max(1, self.steps / calls)


def timed(model: Any, calls: Sequence[Callable[[], list[Any]]]) -> tuple[list[Any], Timing]:
    """Run ``calls`` one after another with a forward hook stamping process time; their outputs and the timing."""
    timing = Timing()

    def stamp(_module: Any, args: Any, kwargs: dict[str, Any], _output: Any) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        timing.stamps.append((int(ids.shape[1]), time.process_time()))

    handle = model.register_forward_hook(stamp, with_kwargs=True)
    out: list[Any] = []
    try:
        for call in calls:
            began = time.process_time()
            out += call()
            timing.close_call(began)
    finally:
        handle.remove()
    return out, timing


def bench_context(model: Any, tokenizer: Any, context: int, batch: int, new_tokens: int, methods: Sequence[str],
                  seed: int, repeats: int = 1) -> dict[str, Any]:
    """Every method on one batch of prompts at ``context`` tokens, ``repeats`` times side by side (each figure is
    the fastest of its repeats: on a shared machine the slow outliers are other jobs); whether outputs agree."""
    import random

    from arc_kit.config.run import SolverSettings
    from arc_kit.core.formats import ARC_KIT_FORMAT
    from arc_kit.solve.decoding import DecodeRequest, GreedyDecoder
    from arc_kit.solve.dfs import answer_token_ids

    digits, _ = answer_token_ids(tokenizer, ARC_KIT_FORMAT)
    rng = random.Random(f"{seed}:{context}")
    step_down = max(1, context // (8 * batch))  # rows a few percent shorter than the widest: real left padding
    requests = [DecodeRequest(row, tuple(rng.choice(digits) for _ in range(context - row * step_down)), new_tokens)
                for row in range(batch)]
    runs: dict[str, Callable[[], list[Any]]] = {}
    for kind in ("inplace", "dynamic"):
        decoder = GreedyDecoder.for_config(model, tokenizer, "cpu", SolverSettings(batch_size=batch, batch_tokens=batch * (context + new_tokens), kv_cache=kind))
        decoder.end_ids = []  # every row runs its whole bound, as on the generate side
        runs[f"kit_{kind}"] = lambda d=decoder: d.decode(requests)
    out: dict[str, Any] = {"context": context, "batch": batch, "new_tokens": new_tokens}
    results: dict[str, list[Any]] = {}
    for _ in range(max(1, repeats)):
        for method in methods:
            if method.startswith("kit_"):
                calls = [runs[method]]
            elif method == "generate_batched":
                calls = [lambda: generate_batched(model, tokenizer, requests, [])]
            else:
                calls = [lambda r=r: generate_batched(model, tokenizer, [r], []) for r in requests]
            results[method], timing = timed(model, calls)
            best = out.get(method, {"prefill_seconds": float("inf"), "decode_ms_per_step": float("inf")})
            out[method] = {"prefill_seconds": round(min(best["prefill_seconds"], timing.prefill_seconds), 3),
                           "decode_ms_per_step": round(min(best["decode_ms_per_step"], timing.ms_per_step(len(calls))),
                                                       2)}
    reference = results.get("generate_batched") or next(iter(results.values()))
    out["identical_tokens"] = {m: sum(a.token_ids == b.token_ids for a, b in zip(g, reference, strict=True))
                               for m, g in results.items()}
    out["identical"] = all(n == batch for n in out["identical_tokens"].values())
    if "kit_inplace" in results and "kit_dynamic" in results:
        out["max_nll_difference_inplace_vs_dynamic"] = max(
            abs(a.nll - b.nll) for a, b in zip(results["kit_inplace"], results["kit_dynamic"], strict=True))
    if "generate_batched" in out:
        peer = out["generate_batched"]["decode_ms_per_step"]
        out["decode_speedup_vs_generate_batched"] = {
            m: round(peer / out[m]["decode_ms_per_step"], 2) for m in methods if m != "generate_batched"}
    return out


def build_model(name: str, tokenizer: Any) -> Any:
    from arc_kit.models.tiny import build_tiny_model

    model = build_tiny_model(tokenizer, MODELS[name]).eval()
    model.generation_config.eos_token_id = None  # end tokens off: every row runs its bound (see the docstring)
    return model


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["tiny", "25m"])
    parser.add_argument("--contexts", nargs="+", type=int, default=[1024, 2048, 4096, 8192],
                        help="prompt tokens of the widest row")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--quick", action="store_true", help="defaults: tiny model, 256 and 512 tokens, 8 new tokens")
    parser.add_argument("--smoke", action="store_true", help="CI: the tiny model, 48 tokens, a batch of 3, 4 new "
                                                             "tokens")
    parser.add_argument("--repeats", type=int, default=1, help="runs per method, side by side; the fastest counts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:  # new defaults; flags given explicitly still win
        parser.set_defaults(models=["tiny"], contexts=[256, 512], new_tokens=8)
    if args.smoke:
        parser.set_defaults(models=["tiny"], contexts=[48], batch=3, new_tokens=4)
    args = parser.parse_args(argv)

    import torch

    from arc_kit.models.tiny import build_arc_tokenizer

    torch.set_num_threads(1)  # as load_model on CPU; process time then is the one core's time
    tokenizer = build_arc_tokenizer()
    report: dict[str, Any] = {"timing": "process time, 1 torch thread", "device": "cpu", "repeats": args.repeats,
                              "models": {}}
    for name in args.models:
        model = build_model(name, tokenizer)
        bench_context(model, tokenizer, 64, 2, 2, args.methods, args.seed)  # warm-up: first calls pay lazy set-up
        rows = []
        for context in args.contexts:
            row = bench_context(model, tokenizer, context, args.batch, args.new_tokens, args.methods, args.seed,
                                args.repeats)
            rows.append(row)
            steps = ", ".join(f"{m} {row[m]['decode_ms_per_step']} ms" for m in args.methods)
            print(f"{name} {context} tokens: decode per step {steps}; identical {row['identical']}", flush=True)
        report["models"][name] = {"parameters": sum(p.numel() for p in model.parameters()), "contexts": rows}
    report["all_identical"] = all(r["identical"] for m in report["models"].values() for r in m["contexts"])
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
