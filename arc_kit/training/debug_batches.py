"""``train.debug_batches``: what each process trained on, in ``debug/rank-<i>.jsonl`` of the run folder (a digest
of each row per step, and the final weights' sums), so a test can see that the processes shared out the data.
torch is imported inside functions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEBUG_DIR = "debug"


def row_digest(ids: Any, mask: Any = None) -> str:
    """A short digest of one row's real tokens (padding left out), to tell rows apart across processes."""
    import hashlib

    tokens = ids[mask.bool()] if mask is not None else ids
    return hashlib.sha1(",".join(map(str, tokens.tolist())).encode()).hexdigest()[:16]


def record_batch(run_dir: Path, rank: int, step: int, inputs: dict[str, Any]) -> None:
    """train.debug_batches: append this process's batch (one digest per row) to ``debug/rank-<rank>.jsonl``."""
    ids, mask = inputs["input_ids"].cpu(), inputs.get("attention_mask")
    rows = [row_digest(ids[i], None if mask is None else mask[i].cpu()) for i in range(ids.shape[0])]
    path = run_dir / DEBUG_DIR / f"rank-{rank}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": step, "rows": rows}) + "\n")


def record_final_weights(run_dir: Path, rank: int, model: Any) -> None:
    """train.debug_batches: the sums of this process's final weights (equal on every process under DDP)."""
    import torch

    with torch.no_grad():
        params = [p.detach().float() for p in model.parameters()]
        total = float(sum(p.sum() for p in params))
        absolute = float(sum(p.abs().sum() for p in params))
    path = run_dir / DEBUG_DIR / f"rank-{rank}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"final": {"param_sum": total, "param_abs_sum": absolute}}) + "\n")
