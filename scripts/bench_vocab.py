"""Full against shrunk vocabulary: test-time training and decoding on a Qwen3-shaped model with Qwen's real
151,936-token vocabulary, before and after ``arc-kit shrink-vocab``; then the same on paper for Qwen3-4B on one L4.

The object measured is what users run: the model is written to a folder and shrunk by the kit
(``arc_kit.models.vocab.shrink_vocabulary``), both folders are loaded by the kit's loader, test-time training is
``arc_kit.solve.ttt.TaskAdapter.train`` on a task whose rows are the length asked for, decoding is the kit's
``GreedyDecoder``. Each measurement runs in a process of its own, so its peak memory is its own.

- TTT step: the process time of each optimiser step (a callback on the adapter's own Trainer; one torch thread;
  the first step, which pays for lazy set-up, is left out) and the peak resident memory while training (Linux's
  VmHWM, reset after the model and its LoRA are in memory), at ``--ttt-tokens`` tokens per row;
- decode: milliseconds per step (one token for each of ``--batch`` rows) at ``--decode-tokens`` prompt tokens,
  end tokens off so every row runs every step (as ``bench_inference.py``);
- outputs: the shrunk model's logits against the full model's at the kept ids on real prompts, and greedy answers
  against the full model decoding with every other token masked (a random model's full-vocabulary argmax is noise;
  a trained one's is always an answer token).

The model is random: what it computes is the real cost, what it says is noise. Its shape: Qwen3 (RMSNorm,
grouped-query attention 4:1 as Qwen3-4B's 32:8, gated MLP, tied embeddings), hidden 256, 4 layers by default; at
this size the 151,936 x 256 output layer is most of the work, so the speed-up measured here is far larger than on
Qwen3-4B, whose body is 10x its output layer: the paper part says what carries over (memory) and what does not.

    python scripts/bench_vocab.py              # TTT at 2k and 8k, decode at 4k (~16 GB peak for full at 8k)
    python scripts/bench_vocab.py --quick      # hidden 64, 2 layers, 256/512 tokens (seconds)

Prints a line per measurement, then one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from arc_kit.models.offline import set_offline_env

set_offline_env(hub=True)  # every model here is built locally; set before anything imports the hub
os.environ.setdefault("OMP_NUM_THREADS", "1")

QWEN_VOCAB = 151936

# Qwen3-4B (Qwen3-4B-Thinking-2507's config; NVARC's checkpoint is this model shrunk to 16 tokens).
QWEN3_4B = {"hidden": 2560, "layers": 36, "intermediate": 9728, "q_heads": 32, "kv_heads": 8, "head_dim": 128,
            "vocab": QWEN_VOCAB, "shrunk_vocab": 16, "parameters": 4.02e9, "tied": True}
LOSS_BYTES_PER_LOGIT = 3 * 4  # the cross-entropy's backward peak: log-softmax and two gradients, float32
L4 = {"bf16_tflops": 121.0, "mfu": 0.40, "bandwidth_gb_s": 300.0, "bandwidth_use": 0.60, "memory_gb": 24.0}


# ---------------------------------------------------------------------------------------------------------------
# The models


def write_full_model(out: Path, hidden: int, layers: int, seed: int) -> Path:
    """A random Qwen3 with Qwen's vocabulary and tokenizer (the arc-kit format's chat template), float32."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from arc_kit.models.qwen_vocab import build_qwen_tokenizer

    tokenizer = build_qwen_tokenizer()
    torch.manual_seed(seed)
    heads = max(4, hidden // 64)
    config = Qwen3Config(vocab_size=QWEN_VOCAB, hidden_size=hidden, intermediate_size=3 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads // 4 or 1,
                         head_dim=hidden // heads, max_position_embeddings=16384, tie_word_embeddings=True,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    Qwen3ForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def task_with_rows_of(tokens: int, tokenizer: Any, prompt_format: Any) -> tuple[Any, int]:
    """A task of square grids whose test-time-training rows are as long as possible up to ``tokens``: (task, row
    length). Every row of it has that length (a query and the other pairs, all of one size, in any view)."""
    from arc_kit.core.examples import tokenize_example
    from arc_kit.core.tasks import Pair, Task

    best: tuple[int, Any] = (0, None)
    for side in range(30, 1, -1):
        grid = tuple(tuple((r * 7 + c * 3) % 10 for c in range(side)) for r in range(side))
        for pairs in range(2, 40):
            train = tuple(Pair(grid, grid) for _ in range(pairs))
            length = tokenize_example(tokenizer, prompt_format, train[1:], train[0], loss_on="answer")["length"]
            if length > tokens:
                break
            if length > best[0]:
                best = (length, Task(f"rows-of-{tokens}", train, (Pair(grid, None),)))
    return best[1], best[0]


# ---------------------------------------------------------------------------------------------------------------
# One measurement (in a process of its own)


def reset_peak_memory() -> bool:
    """Reset this process's peak resident size (Linux: ``5`` to /proc/self/clear_refs); False where it can't."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def memory_mb(field: str) -> float:
    """VmHWM (peak) or VmRSS (now) of this process, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_model(model_dir: str, ttt_tokens: list[int], steps: int, decode_tokens: int, batch: int,
                  new_tokens: int) -> dict[str, Any]:
    """Decoding, then test-time training at each length, on one model folder (decoding first: TTT leaves its
    LoRA in the model)."""
    from arc_kit.config.run import SolverSettings
    from arc_kit.models.loading import load_model

    loaded = load_model(model_dir, SolverSettings(device="cpu", cpu_threads=1))
    out = {"vocab_rows": int(loaded.model.config.vocab_size),
           "decode": measure_decode(loaded, decode_tokens, batch, new_tokens), "ttt": []}
    out["ttt"] = measure_ttt(loaded, ttt_tokens, steps)
    return out


def measure_ttt(loaded: Any, lengths: list[int], steps: int) -> list[dict[str, Any]]:
    """``steps`` rows of each length through ``TaskAdapter.train``, timing each optimiser step."""
    from transformers import TrainerCallback

    from arc_kit.config.run import TTTSettings
    from arc_kit.solve.ttt import TaskAdapter

    adapter = TaskAdapter(loaded, TTTSettings(max_samples=steps, max_length=max(lengths) + 8))
    stamps: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            stamps.append(time.process_time())

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            stamps[-1] = time.process_time() - stamps[-1]

    make_trainer = adapter._trainer

    def trainer_with_timer(*args: Any) -> Any:
        trainer = make_trainer(*args)
        trainer.add_callback(StepTimer())
        return trainer

    adapter._trainer = trainer_with_timer
    rows = []
    for tokens in lengths:
        task, row_tokens = task_with_rows_of(tokens, loaded.tokenizer, loaded.prompt_format)
        stamps.clear()
        before = memory_mb("VmRSS")
        exact = reset_peak_memory()
        stats = adapter.train(task)
        peak = memory_mb("VmHWM")
        timed = stamps[1:] or stamps
        rows.append({"tokens": tokens, "row_tokens": row_tokens, "steps": stats.steps,
                     "step_seconds": round(statistics.median(timed), 3), "peak_rss_mb": round(peak, 1),
                     "peak_increase_mb": round(peak - before, 1), "peak_exact": exact,
                     "loss_first": round(stats.loss_first or 0.0, 3)})
    return rows


def measure_decode(loaded: Any, tokens: int, batch: int, new_tokens: int) -> dict[str, Any]:
    import random

    from bench_inference import timed  # scripts/ sibling: the forward-hook timing bench_inference uses

    from arc_kit.config.run import SolverSettings
    from arc_kit.core.formats import answer_token_ids
    from arc_kit.solve.decoding import DecodeRequest, GreedyDecoder

    digits, _ = answer_token_ids(loaded.tokenizer, loaded.prompt_format)
    rng = random.Random(0)
    requests = [DecodeRequest(row, tuple(rng.choice(digits) for _ in range(tokens - row)), new_tokens)
                for row in range(batch)]
    config = SolverSettings(device="cpu", batch_size=batch, batch_tokens=batch * (tokens + new_tokens))
    decoder = GreedyDecoder.for_config(loaded.model, loaded.tokenizer, "cpu", config)
    decoder.end_ids = []  # every row runs every step
    decoder.decode([DecodeRequest("warm-up", requests[0].prompt_ids[:64], 2)])  # first calls pay lazy set-up
    _, timing = timed(loaded.model, [lambda: decoder.decode(requests)])
    return {"prompt_tokens": tokens, "batch": batch, "new_tokens": new_tokens,
            "decode_ms_per_step": round(timing.ms_per_step(1), 2),
            "prefill_seconds": round(timing.prefill_seconds, 2)}


def measure_outputs(full_dir: str, shrunk_dir: str, tokens: int) -> dict[str, Any]:
    """Logits of the shrunk model against the full model's at the kept ids; greedy answers against the full model
    with every other token masked."""
    import torch

    from arc_kit.config.run import SolverSettings
    from arc_kit.core.augment import views_for_task
    from arc_kit.core.formats import format_token_ids
    from arc_kit.core.synthetic import generate_tasks
    from arc_kit.models.loading import load_model
    from arc_kit.solve.decoding import DecodeRequest, GreedyDecoder
    from arc_kit.solve.prompts import task_prompts

    full = load_model(full_dir, SolverSettings(device="cpu", cpu_threads=1))
    shrunk = load_model(shrunk_dir, SolverSettings(device="cpu", cpu_threads=1))
    kept = format_token_ids(full.tokenizer, full.prompt_format)
    tasks = generate_tasks(["rot90", "flip_lr", "recolour", "gravity_down"], 4, seed=3, sizes=[4, 6], n_train=3)

    def prompts(loaded: Any) -> list[Any]:
        return [p for t in tasks for p in task_prompts(t, loaded.tokenizer, loaded.prompt_format,
                                                       views_for_task(t, 2, 0), tokens)]

    full_prompts, shrunk_prompts = prompts(full), prompts(shrunk)
    worst, same_text = 0.0, True
    index = torch.tensor(kept)
    with torch.inference_mode():
        for a, b in zip(full_prompts, shrunk_prompts, strict=True):
            same_text &= [kept[i] for i in b.token_ids] == list(a.token_ids)
            want = full.model(torch.tensor([a.token_ids])).logits[0][:, index]
            got = shrunk.model(torch.tensor([b.token_ids])).logits[0]
            worst = max(worst, float((got - want).abs().max()))
    dropped = torch.ones(full.model.config.vocab_size, dtype=torch.bool)
    dropped[index] = False

    def kept_only(_module: Any, _args: Any, out: Any) -> Any:
        out["logits"] = out.logits.masked_fill(dropped, float("-inf"))
        return out

    full.model.register_forward_hook(kept_only)

    def greedy(loaded: Any, ps: list[Any]) -> list[str]:
        decoder = GreedyDecoder.for_config(loaded.model, loaded.tokenizer, "cpu", SolverSettings(device="cpu"))
        return [loaded.tokenizer.decode(g.token_ids, skip_special_tokens=False)
                for g in decoder.decode([DecodeRequest(i, p.token_ids, 16) for i, p in enumerate(ps)])]

    answers_full, answers_shrunk = greedy(full, full_prompts), greedy(shrunk, shrunk_prompts)
    return {"prompts": len(full_prompts), "same_tokens_renumbered": same_text,
            "max_logit_difference": worst, "greedy_identical": answers_full == answers_shrunk,
            "kept_tokens": len(kept)}


# ---------------------------------------------------------------------------------------------------------------
# On paper: Qwen3-4B on one L4


def on_paper(tokens: int) -> dict[str, Any]:
    """What shrinking the vocabulary saves for Qwen3-4B on an L4, from the stated assumptions (``QWEN3_4B``, ``L4``)."""
    m, g = QWEN3_4B, L4
    rows_dropped = m["vocab"] - m["shrunk_vocab"]
    head_params = m["vocab"] * m["hidden"]
    gb = 1e9
    logits = {  # one row: the bf16 logits; the loss's peak, in the backward pass: 3 float32 tensors of that size
        "full_bf16_gb": round(tokens * m["vocab"] * 2 / gb, 2),
        "full_loss_peak_gb": round(tokens * m["vocab"] * LOSS_BYTES_PER_LOGIT / gb, 1),
        "shrunk_loss_peak_mb": round(tokens * m["shrunk_vocab"] * LOSS_BYTES_PER_LOGIT / 1e6, 2),
    }
    body_flops = 2 * (m["parameters"] - head_params)  # forward FLOPs a token outside the output layer
    head_flops, shrunk_flops = 2 * head_params, 2 * m["shrunk_vocab"] * m["hidden"]
    rate = g["bf16_tflops"] * 1e12 * g["mfu"]
    # TTT with LoRA and no checkpointing: forward + backward through the frozen weights ~ 3x forward
    ttt_full, ttt_shrunk = (3 * tokens * (body_flops + f) / rate for f in (head_flops, shrunk_flops))
    weights_full = 2 * m["parameters"] / gb
    weights_shrunk = weights_full - 2 * rows_dropped * m["hidden"] / gb
    bandwidth = g["bandwidth_gb_s"] * g["bandwidth_use"]
    return {
        "assumptions": {
            "model": "Qwen3-4B: 4.02e9 parameters, hidden 2560, 36 layers, tied embeddings, bf16",
            "gpu": "one L4: 121 TFLOP/s bf16 dense at 40% (48 TFLOP/s); 300 GB/s at 60% (180 GB/s) for decoding",
            "ttt": f"LoRA, one {tokens}-token row a step, no checkpointing: 3 x forward FLOPs, the output layer's "
                   "included; transformers' cross-entropy upcasts the logits to float32, and its backward pass "
                   "holds the log-softmax and two gradients of that size: 12 bytes a logit at the peak (the CPU "
                   "run measures it: 15.1 GB over 8,152 x 151,936 logits)",
            "decode": "bandwidth-bound: each step reads every weight once",
        },
        "weights_saved_gb": round(2 * rows_dropped * m["hidden"] / gb, 2),
        "weights_gb": {"full": round(weights_full, 2), "shrunk": round(weights_shrunk, 2)},
        # NVARC trains copies of embed_tokens and lm_head: bf16 weight and gradient, two float32 Adam moments
        "ttt_trained_embedding_copies": {
            "full_gb": round(2 * head_params * (2 + 2 + 4 + 4) / gb, 1),
            "shrunk_mb": round(2 * m["shrunk_vocab"] * m["hidden"] * (2 + 2 + 4 + 4) / 1e6, 2)},
        "logits_at_tokens": logits,
        "ttt_step_seconds": {"full": round(ttt_full, 2), "shrunk": round(ttt_shrunk, 2),
                             "speedup": round(ttt_full / ttt_shrunk, 2)},
        "decode_ms_per_step": {"full": round(1000 * weights_full / bandwidth, 1),
                               "shrunk": round(1000 * weights_shrunk / bandwidth, 1),
                               "speedup": round(weights_full / weights_shrunk, 2)},
    }


# ---------------------------------------------------------------------------------------------------------------
# The run


def run_measurement(*args: Any) -> dict[str, Any]:
    """One model's measurements in a fresh process (this script with ``--measure``): its peak memory is its own."""
    cmd = [sys.executable, __file__, "--measure", *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise SystemExit(f"measuring {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def free_memory_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--ttt-tokens", type=int, nargs="+", default=[2048, 8192])
    parser.add_argument("--ttt-steps", type=int, default=3, help="rows trained per measurement (the first is "
                                                                  "left out of the step time)")
    parser.add_argument("--decode-tokens", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--format", default="arc-kit", choices=["arc-kit", "nvarc"], help="the format shrunk to")
    parser.add_argument("--quick", action="store_true", help="hidden 64, 2 layers, TTT at 256/512, decode at 256")
    parser.add_argument("--smoke", action="store_true", help="CI: one layer of 32, TTT at 128/256, decode at 128")
    parser.add_argument("--measure", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:  # a child: one model's measurements, JSON on stdout
        folder, tokens, steps, decode_tokens, batch, new_tokens = args.measure
        result = measure_model(folder, [int(t) for t in tokens.split(",")], int(steps), int(decode_tokens),
                               int(batch), int(new_tokens))
        print(json.dumps(result))
        return result
    if args.quick or args.smoke:  # new defaults; flags given explicitly still win
        parser.set_defaults(hidden=64, layers=2, ttt_tokens=[256, 512], decode_tokens=256, batch=2, new_tokens=4,
                            ttt_steps=2)
        if args.smoke:
            parser.set_defaults(hidden=32, layers=1, ttt_tokens=[128, 256], decode_tokens=128)
        args = parser.parse_args(argv)

    from arc_kit.models.vocab import shrink_vocabulary

    work = Path(tempfile.mkdtemp(prefix="arc-kit-bench-vocab-"))
    full = write_full_model(work / "full", args.hidden, args.layers, seed=0)
    shrunk = shrink_vocabulary(full, work / "shrunk", args.format, local_only=True)
    models = {"full": str(full), "shrunk": str(shrunk.out_dir)}
    report: dict[str, Any] = {
        "model": {"shape": "Qwen3", "hidden": args.hidden, "layers": args.layers, "vocab_full": QWEN_VOCAB,
                  "vocab_shrunk": shrunk.kept, "format": args.format},
        "timing": "process time, 1 torch thread; peak memory: resident set (VmHWM) while training", "ttt": [],
    }
    measured = {}
    for name, folder in models.items():
        # the loss holds the logits, their log-softmax and two gradients of that size in float32
        need = max(args.ttt_tokens) * (QWEN_VOCAB if name == "full" else shrunk.kept) * 4 * 3.3 / 1e6
        if need > free_memory_mb():
            raise SystemExit(f"{name} at {max(args.ttt_tokens)} tokens needs ~{need / 1024:.0f} GB, "
                             f"{free_memory_mb() / 1024:.0f} GB are free: lower --ttt-tokens")
        measured[name] = run_measurement(folder, ",".join(map(str, args.ttt_tokens)), args.ttt_steps,
                                         args.decode_tokens, args.batch, args.new_tokens)
        print(f"{name}: {json.dumps(measured[name])}", file=sys.stderr, flush=True)
    for full_row, shrunk_row in zip(measured["full"]["ttt"], measured["shrunk"]["ttt"], strict=True):
        report["ttt"].append({
            "tokens": full_row["tokens"], "full": full_row, "shrunk": shrunk_row,
            "step_speedup": round(full_row["step_seconds"] / shrunk_row["step_seconds"], 2),
            "peak_memory_ratio": round(full_row["peak_rss_mb"] / shrunk_row["peak_rss_mb"], 2),
            "peak_increase_ratio": round(full_row["peak_increase_mb"] / max(1.0, shrunk_row["peak_increase_mb"]), 1)})
    decode = {name: measured[name]["decode"] for name in models}
    decode["speedup"] = round(decode["full"]["decode_ms_per_step"] / decode["shrunk"]["decode_ms_per_step"], 2)
    report["decode"] = decode
    report["outputs"] = measure_outputs(models["full"], models["shrunk"], 4096)
    print(f"outputs: {json.dumps(report['outputs'])}", file=sys.stderr, flush=True)
    report["qwen3_4b_l4_on_paper"] = on_paper(8192)
    last = report["ttt"][-1]
    report["goal_ttt_step_2x_faster"] = last.get("step_speedup", 0) >= 2
    report["goal_peak_memory_3x_lower"] = last.get("peak_memory_ratio", 0) >= 3
    report["goal_outputs_identical"] = bool(report["outputs"].get("greedy_identical")) and \
        report["outputs"].get("max_logit_difference", 1) <= 1e-5
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
