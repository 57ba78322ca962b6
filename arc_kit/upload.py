"""What goes up to Kaggle: metadata files for datasets and models, and the refusal to send credentials.

No ``kaggle`` import here: these are plain files and checks, usable (and testable) without credentials.
Credentials are located exactly where the client looks (env, kaggle.json, access_token) only to know they
exist and to make sure no uploaded file contains them; their values are never printed or written.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from arc_kit.io_utils import atomic_write_text

MANIFEST_NAME = "arc_kit_manifest.json"
DATASET_METADATA = "dataset-metadata.json"
MODEL_METADATA = "model-metadata.json"
MODEL_INSTANCE_METADATA = "model-instance-metadata.json"
METADATA_FILES = frozenset({DATASET_METADATA, MODEL_METADATA, MODEL_INSTANCE_METADATA, "kernel-metadata.json",
                            "datapackage.json"})

# File names that hold credentials for Kaggle (or anything else); refused wherever they appear in a folder.
CREDENTIAL_FILE_NAMES = frozenset({"kaggle.json", "access_token", "access_token.txt", "credentials.json", ".env",
                                   ".netrc", ".git-credentials"})
# Folders the client itself leaves out of uploads (kaggle_api_extended.DEFAULT_IGNORE_PATTERNS).
CLIENT_IGNORED_DIRS = frozenset({".git", ".cache", ".huggingface"})
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_MIN_SECRET = 8


class CredentialFileError(ValueError):
    """A folder about to be uploaded holds something credential-like."""


# --------------------------------------------------------------------------------------------------------------
# Credentials, located where the client reads them


def _config_dirs(environ: dict[str, str]) -> list[Path]:
    dirs = []
    if environ.get("KAGGLE_CONFIG_DIR"):
        dirs.append(Path(environ["KAGGLE_CONFIG_DIR"]))
    home = Path(environ.get("HOME") or os.path.expanduser("~"))
    dirs.append(home / ".kaggle")
    dirs.append(Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle")
    return dirs


def _read_kaggle_json(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {k: str(v) for k, v in data.items() if k in ("username", "key")} if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def credential_sources(environ: dict[str, str] | None = None) -> list[str]:
    """Where usable credentials are (names and paths only, never values), in the client's order."""
    env = dict(os.environ if environ is None else environ)
    sources = []
    if env.get("KAGGLE_API_TOKEN"):
        sources.append("KAGGLE_API_TOKEN")
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    for name in ("access_token", "access_token.txt"):
        path = home / ".kaggle" / name
        if path.is_file() and path.read_text(encoding="utf-8", errors="replace").strip():
            sources.append(str(path))
    if (home / ".kaggle" / "credentials.json").is_file():  # `kaggle auth login` (OAuth)
        sources.append(str(home / ".kaggle" / "credentials.json"))
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"):
        sources.append("KAGGLE_USERNAME/KAGGLE_KEY")
    for folder in _config_dirs(env):
        creds = _read_kaggle_json(folder / "kaggle.json")
        if creds.get("username") and creds.get("key"):
            sources.append(str(folder / "kaggle.json"))
    return sources


def credential_values(environ: dict[str, str] | None = None) -> list[str]:
    """The secret strings (API key, access token) the client could use; for scanning uploads only."""
    env = dict(os.environ if environ is None else environ)
    values = [env.get("KAGGLE_KEY", "")]
    token = env.get("KAGGLE_API_TOKEN", "")
    if token and Path(token).is_file():
        token = Path(token).read_text(encoding="utf-8", errors="replace").strip()
    values.append(token)
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    for name in ("access_token", "access_token.txt"):
        path = home / ".kaggle" / name
        if path.is_file():
            values.append(path.read_text(encoding="utf-8", errors="replace").strip())
    for folder in _config_dirs(env):
        values.append(_read_kaggle_json(folder / "kaggle.json").get("key", ""))
    return sorted({v for v in values if len(v) >= _MIN_SECRET})


def configured_username(environ: dict[str, str] | None = None) -> str | None:
    """The Kaggle user name from KAGGLE_USERNAME or kaggle.json (access tokens name the user only online)."""
    env = dict(os.environ if environ is None else environ)
    if env.get("KAGGLE_USERNAME"):
        return env["KAGGLE_USERNAME"]
    for folder in _config_dirs(env):
        name = _read_kaggle_json(folder / "kaggle.json").get("username")
        if name:
            return name
    return None


# --------------------------------------------------------------------------------------------------------------
# What a folder would send, and the credential check over it


def files_to_send(folder: Path) -> list[str]:
    """Relative paths of every file an upload of ``folder`` carries (metadata files and the folders the client
    ignores left out; sub-folders included, as with dir_mode zip/tar)."""
    folder = Path(folder)
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in CLIENT_IGNORED_DIRS)
        for name in sorted(files):
            rel = (Path(root) / name).relative_to(folder).as_posix()
            if rel in METADATA_FILES:
                continue
            out.append(rel)
    return out


def find_credential_files(folder: Path, secrets: list[str]) -> list[str]:
    """``"path: reason"`` for each file under ``folder`` that looks like or contains a credential."""
    folder = Path(folder)
    needles = [s.encode() for s in secrets if len(s) >= _MIN_SECRET]
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            rel = path.relative_to(folder).as_posix()
            if name in CREDENTIAL_FILE_NAMES or name.startswith(".env."):
                found.append(f"{rel}: a credential file name")
            elif needles and _contains_any(path, needles):
                found.append(f"{rel}: contains your Kaggle key/token")
    return found


def _contains_any(path: Path, needles: list[bytes]) -> bool:
    try:
        size = path.stat().st_size
        if size == 0:
            return False
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return any(data.find(n) != -1 for n in needles)
    except (OSError, ValueError):
        return False


def refuse_credentials(folder: Path, secrets: list[str] | None = None) -> None:
    """Raise ``CredentialFileError`` naming every credential-like file under ``folder``."""
    found = find_credential_files(folder, credential_values() if secrets is None else secrets)
    if found:
        raise CredentialFileError(f"refusing to upload {folder}: it holds credential-like files: "
                                  + "; ".join(found) + ". Move them out of the folder and try again.")


# --------------------------------------------------------------------------------------------------------------
# Metadata


def check_ref(ref: str, kind: str = "dataset") -> tuple[str, str]:
    """Split ``owner/slug`` and check the slug as the client and site do (lowercase, dashes, 6-50 chars)."""
    parts = ref.split("/")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise ValueError(f"{kind} id must be owner/slug, got {ref!r}")
    owner, slug = parts
    if not _SLUG.match(slug) or not 6 <= len(slug) <= 50:
        raise ValueError(f"{kind} slug {slug!r} must be 6-50 characters of a-z, 0-9 and single dashes")
    if not re.match(r"^[A-Za-z0-9]+(?:[_-][A-Za-z0-9]+)*$", owner):
        raise ValueError(f"{kind} owner {owner!r} is not a Kaggle user name")
    return owner, slug


def title_from_slug(slug: str) -> str:
    """A title that slugifies back to ``slug`` (Kaggle warns when the two disagree)."""
    return " ".join(word.upper() if word == "arc" else word.capitalize() for word in slug.split("-"))


@dataclass
class DatasetSpec:
    ref: str
    title: str | None = None
    licence: str = "other"
    subtitle: str | None = None
    description: str = ""
    keywords: list[str] = field(default_factory=list)

    def metadata(self, folder: Path | None = None) -> dict:
        _, slug = check_ref(self.ref)
        title = self.title or title_from_slug(slug)
        if not 6 <= len(title) <= 50:
            raise ValueError(f"dataset title {title!r} must be 6-50 characters (it is {len(title)})")
        if self.subtitle and not 20 <= len(self.subtitle) <= 80:
            raise ValueError(f"dataset subtitle must be 20-80 characters (it is {len(self.subtitle)})")
        meta: dict = {"title": title, "id": self.ref, "licenses": [{"name": self.licence}],
                      "description": describe_folder(folder, self.description) if folder else self.description}
        if self.subtitle:
            meta["subtitle"] = self.subtitle
        if self.keywords:
            meta["keywords"] = list(self.keywords)
        return meta


def describe_folder(folder: Path, intro: str = "") -> str:
    """The description: ``intro`` plus the folder's arc_kit manifest (what model, trained how), if any."""
    text = intro or "Weights exported by arc-kit for the ARC Prize."
    # The export's merged/ folder holds the manifest; accept that folder or the export root above it.
    for manifest in (Path(folder) / MANIFEST_NAME, Path(folder) / "merged" / MANIFEST_NAME):
        if manifest.is_file():
            rel = manifest.relative_to(folder).as_posix()
            body = manifest.read_text(encoding="utf-8").strip()
            return text + f"\n\n## {rel}\n\n```json\n{body}\n```\n"
    return text


def write_dataset_metadata(folder: Path, spec: DatasetSpec) -> Path:
    path = Path(folder) / DATASET_METADATA
    atomic_write_text(path, json.dumps(spec.metadata(folder), indent=2) + "\n")
    return path


@dataclass
class ModelSpec:
    """A Kaggle Model (``owner/model``) with one instance (``framework/instance``) holding the weights."""

    owner: str
    model_slug: str
    framework: str = "transformers"
    instance_slug: str = "default"
    title: str | None = None
    licence: str = "Apache 2.0"
    description: str = ""
    private: bool = True

    @property
    def instance_ref(self) -> str:
        return f"{self.owner}/{self.model_slug}/{self.framework}/{self.instance_slug}"

    def model_metadata(self, folder: Path) -> dict:
        check_ref(f"{self.owner}/{self.model_slug}", "model")
        return {"ownerSlug": self.owner, "slug": self.model_slug,
                "title": self.title or title_from_slug(self.model_slug), "isPrivate": bool(self.private),
                "description": describe_folder(folder, self.description)}

    def instance_metadata(self) -> dict:
        if not _SLUG.match(self.instance_slug):
            raise ValueError(f"model instance slug {self.instance_slug!r} must be a-z, 0-9 and single dashes")
        return {"ownerSlug": self.owner, "modelSlug": self.model_slug, "instanceSlug": self.instance_slug,
                "framework": self.framework, "licenseName": self.licence, "overview": self.description,
                "usage": "Load with transformers from the mounted folder (arc-kit's submission kernel does).",
                "fineTunable": False, "trainingData": []}


def write_model_metadata(folder: Path, spec: ModelSpec) -> list[Path]:
    paths = [Path(folder) / MODEL_METADATA, Path(folder) / MODEL_INSTANCE_METADATA]
    atomic_write_text(paths[0], json.dumps(spec.model_metadata(folder), indent=2) + "\n")
    atomic_write_text(paths[1], json.dumps(spec.instance_metadata(), indent=2) + "\n")
    return paths


def print_plan(folder: Path, target: str, stream=None) -> list[str]:
    """List what an upload would send (the dry run); returns the relative paths."""
    stream = stream or sys.stdout
    files = files_to_send(folder)
    total = sum((Path(folder) / f).stat().st_size for f in files)
    print(f"would upload {len(files)} files ({total / 1e6:.1f} MB) from {folder} to {target}:", file=stream)
    for rel in files:
        print(f"  {rel}", file=stream)
    return files
