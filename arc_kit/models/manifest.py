"""Which library versions a set of exported weights needs, and whether this interpreter has them.

Why: tokenizer files saved by transformers 5 name a class (``TokenizersBackend``) that transformers 4 does not
have, so on an older Kaggle image every answer silently stays a placeholder. The export writes the range into
``arc_kit_manifest.json``; the kernel checks it before it loads anything and says so in one line.
"""

from __future__ import annotations

import importlib.metadata as md
import json
from pathlib import Path

MANIFEST_FILE = "arc_kit_manifest.json"
CHECKED = ("transformers",)  # the libraries whose file formats the weights folder depends on


def loading_requirements(saved_with: dict[str, str]) -> dict[str, str]:
    """The version range each checked library must be in to load what ``saved_with`` wrote: the same major."""
    out = {}
    for name in CHECKED:
        version = saved_with.get(name)
        if version and version.split(".")[0].isdigit():
            major = int(version.split(".")[0])
            out[name] = f">={major}.0,<{major + 1}"
    return out


def installed_version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def check_model_requirements(model_dir: Path) -> list[str]:
    """One line per library whose installed version cannot load ``model_dir`` (from its manifest, if any)."""
    manifest = Path(model_dir) / MANIFEST_FILE
    if not manifest.is_file():
        return []
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [f"{manifest}: unreadable manifest, library versions not checked"]
    if not isinstance(data, dict):
        return []
    requires = data.get("requires") or loading_requirements(data.get("versions") or {})
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    problems = []
    for name, spec in requires.items():
        have = installed_version(name)
        try:
            ok = have is not None and SpecifierSet(spec).contains(have, prereleases=True)
        except InvalidSpecifier:
            problems.append(f"{manifest}: bad requirement {name}{spec}")
            continue
        if not ok:
            problems.append(f"the weights in {model_dir} need {name}{spec} (exported with "
                            f"{(data.get('versions') or {}).get(name, '?')}); this image has {have or 'none'}")
    return problems
