"""The environment that keeps model libraries from reaching the network: set once, before they are imported.

Why: huggingface_hub reads its offline switch when it is imported, and a Kaggle kernel has no network (a hub
lookup there hangs or fails); Unsloth sends usage statistics when it is imported unless told not to. Standard
library only: the kernel entry calls this right after installing arc-kit, before anything imports torch.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

NO_STATISTICS = {"UNSLOTH_DISABLE_STATISTICS": "1"}
"""Unsloth's statistics call at import: off everywhere, training on a networked box included."""
NO_HUB = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    # Workers are forked after a tokenizer ran; the Rust tokenizer would warn (and drop its threads) in each.
    "TOKENIZERS_PARALLELISM": "false",
}
"""No hub lookups: loading weights for inference, where every file is local."""


def set_offline_env(*, hub: bool, environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set the variables (``NO_STATISTICS``, and ``NO_HUB`` when ``hub``) that the user has not set, in
    ``environ`` (default: ``os.environ`` as it is at the call); return what they now hold. ``hub=False`` is for
    training, which may download its base model from the hub.

    ``os.environ`` is looked up at each call, never bound as a default: ``datasets`` replaces the object during a
    ``map(num_proc=...)``, and a default bound at import would then write into a copy nobody reads."""
    environ = os.environ if environ is None else environ
    wanted = {**NO_STATISTICS, **(NO_HUB if hub else {})}
    for name, value in wanted.items():
        environ.setdefault(name, value)
    return {name: environ[name] for name in wanted}
