"""Which folder holds the weights: a folder with ``config.json`` (a merged model) or ``adapter_config.json`` (a LoRA
adapter), found at or below a folder the user or the kernel names, by one rule for loading, the kernel and uploads.
"""

from __future__ import annotations

import logging
from pathlib import Path

from arc_kit.core.files import folders_below
from arc_kit.errors import ArcKitError
from arc_kit.models.manifest import MANIFEST_FILE, MERGED_DIR, has_manifest

log = logging.getLogger(__name__)

SEARCH_DEPTH = 7
"""Folders searched below the one named: /kaggle/input/models/owner/model/framework/variation/version/ is 6 below
the input root."""


class WeightsFolderError(ArcKitError, FileNotFoundError):
    """No weights folder, or several and no rule to pick one; the message says what was seen."""


def is_weights_folder(folder: Path) -> bool:
    return (folder / "config.json").exists() or (folder / "adapter_config.json").exists()


def choose_weights(folder: Path) -> Path:
    """The one weights folder at or below ``folder``: the folder itself; else the one holding the kit's manifest;
    else one named ``merged`` (the kit's export, whose ``adapter/`` sits beside it); else the only one. Anything
    else is an error naming what was seen."""
    if is_weights_folder(folder):
        return folder
    found = [f for f in folders_below(folder, SEARCH_DEPTH) if is_weights_folder(f)]
    if len(found) == 1:
        return found[0]
    if not found:
        seen = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())[:12] if folder.is_dir() else []
        raise WeightsFolderError(f"no weights folder (config.json or adapter_config.json) under {folder}; it holds: "
                                 f"{', '.join(seen) or 'nothing'}. Attach the exported {MERGED_DIR}/ folder as a "
                                 "dataset or Kaggle Model")
    for rule, picked in ((f"holds {MANIFEST_FILE}", [f for f in found if has_manifest(f)]),
                         (f"the export's {MERGED_DIR}/ folder", [f for f in found if f.name == MERGED_DIR])):
        if len(picked) == 1:
            others = ", ".join(str(f) for f in found if f != picked[0])
            log.warning(f"weights: using {picked[0]} ({rule}); also seen: {others}")
            return picked[0]
    names = ", ".join(str(f) for f in found[:5])
    raise WeightsFolderError(f"several weights folders under {folder} ({names}); name one with model_dir")
