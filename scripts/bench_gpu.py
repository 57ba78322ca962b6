"""The GPU plan (docs/gpu-plan.md), measured: one short run on one GPU, a Qwen3-4B-shaped model with random bf16 weights.

    python scripts/bench_gpu.py                # on a GPU: Qwen3-4B shape, prompts of 2.8k and 8k tokens, ~4 min
    python scripts/bench_gpu.py --cpu-smoke    # (or --smoke) the same code on a tiny config, on the CPU, in seconds

Nothing is downloaded: the model is built from ``QWEN3_4B`` (Qwen3-4B's published shape) with random weights, once
with Qwen's full 151,936-token vocabulary and once shrunk to NVARC's 16 tokens; the prompts are random grids written
in NVARC's format. Random weights decide nothing the plan depends on: every stage runs a fixed amount of work
(end tokens off, a fixed number of search steps), so the time is the model's, not the answer's.

Every stage runs the kit's own code, as a task in the kernel does:

- phase-1 greedy: ``GreedyDecoder``, one view: a prefill, then ``GREEDY_STEPS`` tokens;
- depth-first search over 8 views, one after another and in lock-step: 8 prefills and ``SEARCH_STEPS`` steps of
  one row each, against one batched prefill of 8 rows and ``SEARCH_STEPS`` steps of 8 rows (a lock-step search
  step feeds one token per view, as a greedy step of 8 rows does);
- re-scoring: ``prefix_nlls`` (each view's prompt once, its candidates teacher-forced from its cache), 8 views x
  4 candidates of ``ANSWER_TOKENS`` tokens;
- test-time training: ``TaskAdapter`` (the kit's LoRA, rank 32, checkpointing on) on a task whose rows are the
  prompt's length, a few steps timed and scaled to the plan's 128 rows.

Each stage reports seconds and peak GPU memory, the plan's figure for one L4, and the measured time converted to
an L4: compute-bound parts (prefills, training, re-scoring) scaled by the ratio of dense bf16 throughput, decoding
steps by the ratio of memory bandwidth (a decoding step reads every weight once). ``DEVICES`` holds the peak
figures assumed for each GPU. The weights are in the type the kit picks for the GPU (``models.precision``:
float16 on a T4).

The JSON also holds ``memory``: the token budgets a worker fits to a T4 and an L4 for Qwen3-4B with the full and
the shrunk vocabulary (``arc_kit.models.memory.card_budgets``, the figures of ``docs/gpu-memory.md``), and on a GPU
the budgets this card's free memory gives after each model's weights, beside the stages' measured peaks.
Prints a table, then one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, arc-kit not installed

QWEN3_4B = {"hidden_size": 2560, "intermediate_size": 9728, "num_hidden_layers": 36, "num_attention_heads": 32,
            "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 40960,
            "rope_theta": 1_000_000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": True}
SMOKE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 4096, "rope_theta": 10_000.0,
         "rms_norm_eps": 1e-6, "tie_word_embeddings": True}
VOCABS = {"full": 151_936, "shrunk": 16}  # Qwen's vocabulary; NVARC's shrunk one (arc_kit.models.vocab)

# The GPU plan (docs/gpu-plan.md) for Qwen3-4B on one L4, seconds a task (one test input), at 2.8k-token prompts.
PLAN = {"phase-1 greedy": 10.0, "test-time training (128 rows)": 105.0, "search, 8 views one after another": 95.0,
        "search, 8 views in lock-step": 21.0, "re-scoring, 8 views x 4 candidates": 4.5}
GREEDY_STEPS = 200  # the plan's median answer
SEARCH_STEPS = 260  # the plan's steps per view of a search at p = 0.1
ANSWER_TOKENS = 200
VIEWS, CANDIDATES, TTT_ROWS = 8, 4, 128


@dataclass(frozen=True)
class Device:
    bf16_tflops: float  # dense peak
    bandwidth_gbs: float


# Peak figures assumed per GPU (vendor data sheets, dense bf16, SXM where there are two forms).
DEVICES = {"H200": Device(989.0, 4800.0), "H100": Device(989.0, 3350.0), "A100": Device(312.0, 2039.0),
           "L4": Device(121.0, 300.0), "T4": Device(65.0, 320.0)}
L4 = DEVICES["L4"]


@dataclass
class Sizes:
    contexts: tuple[int, ...]
    greedy_steps: int  # measured, then scaled to GREEDY_STEPS
    search_steps: int  # measured, then scaled to SEARCH_STEPS
    answer_tokens: int
    ttt_rows: int  # measured, then scaled to TTT_ROWS


GPU_SIZES = Sizes(contexts=(2800, 8000), greedy_steps=40, search_steps=40, answer_tokens=ANSWER_TOKENS, ttt_rows=4)
SMOKE_SIZES = Sizes(contexts=(96, 160), greedy_steps=4, search_steps=4, answer_tokens=8, ttt_rows=2)


def device_figures(name: str) -> Device:
    return next((d for key, d in DEVICES.items() if key in name), L4)


class Clock:
    """Wall seconds with the GPU's queue drained first, and the peak memory since the last reset."""

    def __init__(self, torch: Any, cuda: bool):
        self.torch, self.cuda = torch, cuda

    def now(self) -> float:
        if self.cuda:
            self.torch.cuda.synchronize()
        return time.perf_counter()

    def reset_peak(self) -> None:
        if self.cuda:
            self.torch.cuda.reset_peak_memory_stats()

    def peak_gb(self) -> float:
        return self.torch.cuda.max_memory_allocated() / 1e9 if self.cuda else 0.0


def build_model(torch: Any, shape: dict[str, Any], vocab: int, device: str, dtype: Any) -> Any:
    from transformers import Qwen3ForCausalLM

    config = qwen3_config(shape, vocab)
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Qwen3ForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def random_grid_task(context: int, seed: int) -> Any:
    """A task of 4 demonstration pairs whose NVARC prompt (3 pairs + a query) is about ``context`` tokens: square
    grids of side s cost s * (s + 1) tokens each, 8 of them in a training row."""
    import random

    from arc_kit.core.tasks import Pair, Task

    side = max(2, min(30, int(math.sqrt(context / 8))))
    rng = random.Random(seed)

    def grid() -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(rng.randrange(10) for _ in range(side)) for _ in range(side))

    return Task(f"bench-{context}", tuple(Pair(grid(), grid()) for _ in range(4)), (Pair(grid()),))


def decode_seconds(decoder: Any, prompts: list[list[int]], steps: int, clock: Clock) -> float:
    """Wall seconds of the kit's greedy decoder on ``prompts`` (one batch) for ``steps`` tokens each."""
    from arc_kit.solve.decoding import DecodeRequest

    began = clock.now()
    decoder.decode([DecodeRequest(i, tuple(p), steps) for i, p in enumerate(prompts)])
    return clock.now() - began


def bench_model(torch: Any, model: Any, tokenizer: Any, device: str, context: int, sizes: Sizes,
                clock: Clock) -> dict[str, dict[str, float]]:
    """Every stage of one task at one prompt length: measured seconds split into compute and decoding, peak GB."""
    import random

    from arc_kit.config.lora import LoraSettings
    from arc_kit.config.run import SolverSettings, TTTSettings
    from arc_kit.core.formats import NVARC_FORMAT
    from arc_kit.models.loading import LoadedModel
    from arc_kit.solve.decoding import GreedyDecoder
    from arc_kit.solve.rescoring import prefix_nlls
    from arc_kit.solve.ttt import TaskAdapter

    rng = random.Random(context)
    prompt = [rng.randrange(11) for _ in range(context)]
    stages: dict[str, dict[str, float]] = {}

    def decoder(rows: int) -> Any:
        room = rows * (context + max(sizes.greedy_steps, sizes.search_steps) + 1)
        d = GreedyDecoder.for_config(model, tokenizer, device, SolverSettings(batch_size=rows, batch_tokens=room,
                                                                              prefill_chunk_tokens=8192))
        d.end_ids = []  # every row runs every step: the time is the model's, not the answer's
        return d

    with torch.inference_mode():
        decode_seconds(decoder(1), [prompt[:64]], 2, clock)  # kernels compiled and caches warm before any timing
        for rows in (1, VIEWS):
            clock.reset_peak()
            prefill = decode_seconds(decoder(rows), [prompt] * rows, 1, clock)
            steps = max(2, sizes.search_steps if rows > 1 else sizes.greedy_steps)
            whole = decode_seconds(decoder(rows), [prompt] * rows, steps, clock)
            step = max(0.0, whole - prefill) / (steps - 1)
            peak = clock.peak_gb()
            if rows == 1:
                stages["phase-1 greedy"] = {"compute": prefill, "decode": step * GREEDY_STEPS, "peak_gb": peak}
                stages["search, 8 views one after another"] = {
                    "compute": VIEWS * prefill, "decode": VIEWS * step * SEARCH_STEPS, "peak_gb": peak}
            else:
                stages["search, 8 views in lock-step"] = {"compute": prefill, "decode": step * SEARCH_STEPS,
                                                         "peak_gb": peak}
        answers = [[[rng.randrange(11) for _ in range(sizes.answer_tokens)] for _ in range(CANDIDATES)]
                   for _ in range(VIEWS)]
        clock.reset_peak()
        began = clock.now()
        prefix_nlls(model, [prompt] * VIEWS, answers, score_token_budget=4 * (context + sizes.answer_tokens),
                    device=device)
        stages["re-scoring, 8 views x 4 candidates"] = {"compute": clock.now() - began, "decode": 0.0,
                                                       "peak_gb": clock.peak_gb()}
    loaded = LoadedModel(model, tokenizer, device, "transformers", "bench", next(model.parameters()).dtype,
                         False, NVARC_FORMAT)
    ttt = TTTSettings(max_samples=sizes.ttt_rows + 1, lora=LoraSettings(r=32, alpha=32), max_length=context + 1024,
                      colour_views=False)
    adapter = TaskAdapter(loaded, ttt)
    task = random_grid_task(context, seed=context)
    adapter.train(random_grid_task(min(context, 256), seed=1))  # the Trainer's first-use costs, not timed
    clock.reset_peak()
    began = clock.now()
    stats = adapter.train(task)
    seconds = clock.now() - began
    stages["test-time training (128 rows)"] = {"compute": seconds / max(1, stats.steps) * TTT_ROWS, "decode": 0.0,
                                              "peak_gb": clock.peak_gb()}
    adapter.peft_model.unload()  # the model without the LoRA again, for the next prompt length
    return stages


def card_memory(vocabs: dict[str, int]) -> dict[str, dict[str, dict[str, int]]]:
    """The budgets a worker on each of Kaggle's cards would choose for Qwen3-4B (float16 or bfloat16 weights), by
    card and vocabulary, with the free memory they start from."""
    from arc_kit.models.memory import CARDS, card_budgets, model_shape

    out: dict[str, dict[str, dict[str, int]]] = {}
    for card in CARDS.values():
        for vocab_name, vocab in vocabs.items():
            shape = model_shape(qwen3_config(QWEN3_4B, vocab), dtype_bytes=2)
            out.setdefault(card.name, {})[vocab_name] = {"free_bytes": card.free_after_weights(shape),
                                                         **card_budgets(card, shape).to_dict()}
    return out


def qwen3_config(shape: dict[str, Any], vocab: int) -> Any:
    from transformers import Qwen3Config

    return Qwen3Config(vocab_size=vocab, pad_token_id=min(13, vocab - 1), eos_token_id=min(15, vocab - 1),
                       bos_token_id=None, **shape)


def budgets_here(model: Any, device: str, dtype: Any) -> dict[str, int] | None:
    """The budgets this GPU's free memory gives now, with ``model`` loaded (None on a CPU)."""
    from arc_kit.config.run import SolverSettings, TTTSettings
    from arc_kit.models.memory import budgets_for

    fitted = budgets_for(model, device, dtype, SolverSettings(), TTTSettings())
    if fitted is None:
        return None
    budgets, _, free = fitted
    return {"free_bytes": free, **budgets.to_dict()}


def l4_seconds(stage: dict[str, float], here: Device) -> float:
    return (stage["compute"] * here.bf16_tflops / L4.bf16_tflops
            + stage["decode"] * here.bandwidth_gbs / L4.bandwidth_gbs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", "--smoke", dest="cpu_smoke", action="store_true",
                        help="a tiny config on the CPU (seconds): the code runs")
    args = parser.parse_args(argv)

    from arc_kit.models.offline import set_offline_env

    set_offline_env(hub=True)
    import torch

    from arc_kit.models.precision import choose_dtype
    from arc_kit.models.vocab import nvarc_tokenizer

    cuda = torch.cuda.is_available() and not args.cpu_smoke
    if not cuda and not args.cpu_smoke:
        print("no GPU: run with --cpu-smoke to check the code on a tiny config", file=sys.stderr)
        return 2
    device = "cuda" if cuda else "cpu"
    dtype = choose_dtype(None, device)  # what the kit would run in: bfloat16 on an L4, float16 on a T4
    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    here = device_figures(name) if cuda else L4
    shape, sizes = (QWEN3_4B, GPU_SIZES) if cuda else (SMOKE, SMOKE_SIZES)
    clock = Clock(torch, cuda)
    tokenizer = nvarc_tokenizer()
    began = time.time()
    rows = []
    here_budgets = {}
    for vocab_name, vocab in VOCABS.items():
        model = build_model(torch, shape, vocab, device, dtype)
        here_budgets[vocab_name] = budgets_here(model, device, dtype)
        for context in sizes.contexts:
            for stage, measured in bench_model(torch, model, tokenizer, device, context, sizes, clock).items():
                seconds = measured["compute"] + measured["decode"]
                l4 = l4_seconds(measured, here)
                plan = PLAN[stage] if context == sizes.contexts[0] and vocab_name == "full" else None
                rows.append({"stage": stage, "vocab": vocab_name, "context": context, "seconds": round(seconds, 3),
                             "l4_seconds": round(l4, 2), "plan_l4_seconds": plan,
                             "l4_over_plan": round(l4 / plan, 2) if plan else None,
                             "peak_gb": round(measured["peak_gb"], 2)})
                print(f"{stage:<38} {vocab_name:>6} {context:>5} tokens: {seconds:8.2f} s here, {l4:8.1f} s on an "
                      f"L4 (plan {plan if plan is not None else '-'}), peak {measured['peak_gb']:.1f} GB",
                      flush=True)
        del model
        if cuda:
            torch.cuda.empty_cache()
    print(json.dumps({"device": name, "shape": "qwen3-4b" if cuda else "smoke", "dtype": str(dtype).split(".")[-1],
                      "assumed_peaks": {
        "here": here.__dict__, "L4": L4.__dict__}, "steps": {"greedy": GREEDY_STEPS, "search": SEARCH_STEPS,
                                                              "ttt_rows": TTT_ROWS},
        "seconds": round(time.time() - began, 1), "rows": rows,
        "memory": {"cards": card_memory(VOCABS), "here": here_budgets if cuda else None}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
