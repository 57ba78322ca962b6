"""The benchmarks' pre-trained tiny models: trained once with the demo recipe plus overrides, cached by their hash.

Not a benchmark itself: ``bench_solver.py`` and ``bench_ttt.py`` train through it, ``bench_learning.py`` takes its
smoke recipe and its warning (scripts/ is on the path of a script).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# The model the benchmarks' figures were measured with: the demo's shape and loss (4 layers, 8 heads, the loss on
# every output), which learns rot180 under the locked versions (3 layers and 4 heads with the loss on the answer
# only did not), and its data seed (which tasks the eval split holds moves when rot180 is learnt). Pinned here so that a change to the demo config does not change what a benchmark measures, and
# part of the cache key.
BENCH_RECIPE = ("model.tiny_hidden_size=128", "model.tiny_layers=4", "model.tiny_heads=8", "model.tiny_kv_heads=4",
                "model.tiny_intermediate_size=256", "data.loss_on=all_outputs", "data.seed=0")


# CI's smoke runs (``--smoke``): the same data and code path on a model a few thousand parameters wide, trained for
# a few steps. It learns nothing: a smoke run shows that every part runs, not what it measures.
SMOKE_RECIPE = ("model.tiny_hidden_size=32", "model.tiny_layers=1", "model.tiny_heads=2", "model.tiny_kv_heads=1",
                "model.tiny_intermediate_size=64", "data.augmentations=1", "data.eval_fraction=0",
                "train.max_steps=2")


def default_cache() -> Path:
    """Where the benchmarks keep their trained models: ``$XDG_CACHE_HOME/arc-kit-bench`` (``~/.cache`` without it)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "arc-kit-bench"


def cached_model(cache: Path, name: str, overrides: Sequence[str], key_extra: str = "",
                 prepare: Callable[[Path], list[str]] | None = None, smoke: bool = False) -> Path:
    """The exported merged model of the demo recipe with ``overrides``, trained once and kept in ``cache``.

    ``prepare(folder)`` may write training data into the run's folder first and return the overrides naming it;
    ``key_extra`` is whatever else decides the model (a generator's source, its task counts). ``smoke``: the
    ``SMOKE_RECIPE`` model instead (cached apart: the recipe is part of the key).
    """
    from arc_kit.training import export_model, load_config, resolve_config_path, run_training

    overrides = [*BENCH_RECIPE, *overrides, *(SMOKE_RECIPE if smoke else ())]
    key = hashlib.sha256("\n".join([key_extra, *overrides]).encode()).hexdigest()[:12]
    folder = cache / f"{name}-{key}"
    merged = folder / "export" / "merged"
    if (merged / "config.json").is_file():
        return merged
    if folder.exists():
        shutil.rmtree(folder)
    print(f"training the bench model into {folder} (once)", file=sys.stderr, flush=True)
    extra = prepare(folder) if prepare else []
    config = load_config(resolve_config_path("demo"), [*overrides, *extra, f"train.output_dir={folder / 'run'}"])
    result = run_training(config)
    return export_model(result.output_dir, folder / "export", dtype="float32")


def warn_learned_nothing(model: Path, evidence: str) -> None:
    """The line a benchmark prints when its model learned nothing (``evidence`` says how it shows): its rows then
    measure nothing."""
    print(f"WARNING: the model {model} learned nothing ({evidence}): these figures measure nothing",
          file=sys.stderr, flush=True)
