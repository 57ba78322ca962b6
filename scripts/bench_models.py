"""The benchmarks' pre-trained tiny models: trained once with the demo recipe plus overrides, cached by their hash.

Not a benchmark itself: ``bench_solver.py`` and ``bench_ttt.py`` import it (scripts/ is on the path of a script).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# The model the benchmarks' figures were measured with (the demo trains a larger one, with the loss on every
# output): pinned here so that a change to the demo config does not change what a benchmark measures, and part of
# the cache key.
BENCH_RECIPE = ("model.tiny_hidden_size=128", "model.tiny_layers=3", "model.tiny_heads=4", "model.tiny_kv_heads=2",
                "model.tiny_intermediate_size=256", "data.loss_on=answer")


def cached_model(cache: Path, name: str, overrides: Sequence[str], key_extra: str = "",
                 prepare: Callable[[Path], list[str]] | None = None) -> Path:
    """The exported merged model of the demo recipe with ``overrides``, trained once and kept in ``cache``.

    ``prepare(folder)`` may write training data into the run's folder first and return the overrides naming it;
    ``key_extra`` is whatever else decides the model (a generator's source, its task counts).
    """
    from arc_kit.training import export_model, load_config, resolve_config_path, run_training

    overrides = [*BENCH_RECIPE, *overrides]
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
