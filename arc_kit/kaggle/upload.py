"""What goes up to Kaggle: metadata files for datasets and models, and the refusal to send credentials.

No ``kaggle`` import here: these are plain files and checks, usable (and testable) without credentials.
Credentials are located exactly where the client looks (env, kaggle.json, access_token) only to know they
exist and to make sure no uploaded file contains them; their values are never printed or written. The scan
walks exactly what the client sends (links followed, as the client follows them) and never loads a weight file
whole.
"""

from __future__ import annotations

import bz2
import fnmatch
import gzip
import io
import json
import lzma
import os
import re
import shutil
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

from arc_kit.core.files import atomic_write_text
from arc_kit.errors import ArcKitError
from arc_kit.models.manifest import find_manifest

DATASET_METADATA = "dataset-metadata.json"
MODEL_METADATA = "model-metadata.json"
MODEL_INSTANCE_METADATA = "model-instance-metadata.json"
METADATA_FILES = frozenset({DATASET_METADATA, MODEL_METADATA, MODEL_INSTANCE_METADATA, "kernel-metadata.json",
                            "datapackage.json"})

# File names that hold credentials for Kaggle (or anything else); refused wherever they appear in a folder.
CREDENTIAL_FILE_NAMES = frozenset({"kaggle.json", "access_token", "access_token.txt", "credentials.json", ".env",
                                   ".netrc", ".git-credentials"})
COVER_IMAGE_FILES = frozenset(f"dataset-cover-image{ext}" for ext in (".png", ".jpg", ".jpeg", ".webp"))
# Names (lower-cased) of text files scanned for any key-shaped string, not only the configured key.
PATTERN_SCAN_NAMES = ("*.json", "*.env", "token", "*token*")
# A Kaggle API key (32 hex characters, not part of a longer word) or a Hugging Face token.
_KEY_LIKE = re.compile(rb"(?<![0-9A-Za-z])"
                       rb"(?:(?P<kaggle>[0-9a-f]{32})(?![0-9A-Za-z])|(?P<hf>hf_[A-Za-z0-9]{30,}))")
_PATTERN_OVERLAP = 64  # bytes kept between reads: longer than any key-shaped match needs to be seen whole
SCAN_CHUNK = 8 * 2**20
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_MIN_SECRET = 8


class CredentialFileError(ArcKitError, ValueError):
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


class KaggleRefError(ArcKitError, ValueError):
    """A Kaggle id, slug, title or folder breaks Kaggle's rules; the message says which and how."""


class UploadFolderError(ArcKitError, ValueError):
    """A folder cannot be uploaded as it is (a link loop, an unreadable folder); the message says where."""


def _client_skips(rel_parts: tuple[str, ...], is_dir: bool) -> bool:
    """What the client leaves out: metadata at the top, ``.git`` anywhere, and ``.cache``/``.huggingface`` at
    the top or at the top of a zipped sub-folder (DEFAULT_IGNORE_PATTERNS match relative to each archive)."""
    name = rel_parts[-1]
    if len(rel_parts) == 1 and not is_dir and (name in METADATA_FILES or name in COVER_IMAGE_FILES):
        return True
    return is_dir and (name == ".git" or (name in (".cache", ".huggingface") and len(rel_parts) <= 2))


def upload_entries(folder: Path) -> list[tuple[str, Path]]:
    """``(relative path, path)`` of every file an upload of ``folder`` carries, as the client finds them:
    links followed (it zips a linked folder and reads a linked file), broken links and special files skipped.

    This one walk feeds both the dry-run listing and the credential scan: what is listed is what is checked.
    A link back to a folder above it would make the client archive forever: it is refused, naming the link.
    """
    folder = Path(folder)
    out: list[tuple[str, Path]] = []

    def visit(directory: Path, parts: tuple[str, ...], chain: tuple[str, ...]) -> None:
        where = "/".join(parts) or str(folder)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as e:
            raise UploadFolderError(f"{where}: cannot list this folder ({e.strerror or e})") from None
        for entry in entries:
            rel_parts = (*parts, entry.name)
            rel = "/".join(rel_parts)
            is_dir = entry.is_dir()  # follows links, as the client's os.path.isdir does
            if _client_skips(rel_parts, is_dir):
                continue
            if is_dir:
                real = os.path.realpath(entry.path)
                if real in chain:
                    raise UploadFolderError(f"{rel}: a link that loops back to {real}; the client would "
                                            "archive it again and again. Remove the link and try again.")
                visit(Path(entry.path), rel_parts, (*chain, real))
            elif entry.is_file():
                out.append((rel, Path(entry.path)))

    visit(folder, (), (os.path.realpath(folder),))
    return out


def _needs_pattern_scan(name: str) -> bool:
    """Files whose name says they may hold a pasted key: scanned for any key-shaped string, not only yours."""
    name = name.lower()
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in PATTERN_SCAN_NAMES)


def _secret_needles(secrets: list[str]) -> list[bytes]:
    """Each secret, lower-cased (the scan lower-cases what it reads: a key pasted in upper case is the same
    key), as it would sit in a UTF-8, UTF-16-LE or UTF-16-BE file (Windows editors write UTF-16)."""
    encodings = ("utf-8", "utf-16-le", "utf-16-be")
    return sorted({s.lower().encode(enc) for s in secrets if len(s) >= _MIN_SECRET for enc in encodings})


def _is_credential_name(name: str) -> bool:
    return name in CREDENTIAL_FILE_NAMES or name.startswith(".env.")


def find_credential_files(folder: Path, secrets: list[str]) -> list[str]:
    """``"path: reason"`` for each file an upload of ``folder`` would carry that looks like or contains a
    credential: a credential file name, your configured key/token in any case (any file, any size), or, in a
    text file named like ``*.json``/``*.env``/``*token*``, anything shaped like a Kaggle key or a Hugging Face
    token. Archives (zip, tar, gzip, bzip2, xz, nested too) are opened and their members checked the same way;
    one that cannot be opened (7z, rar, zstd, encrypted, damaged) is refused by name. Reasons never quote the
    secret."""
    needles = _secret_needles(secrets)
    found = []
    for rel, path in upload_entries(folder):
        if _is_credential_name(rel.rsplit("/", 1)[-1]):
            found.append(f"{rel}: a credential file name")
            continue
        try:
            with open(path, "rb") as f:
                reason = _scan_content(f, rel, needles, depth=0)
        except OSError as e:
            reason = f"cannot be read to check it for credentials ({e.strerror or e})"
        if reason:
            found.append(f"{rel}: {reason}")
    return found


# Archives the standard library opens, by their first bytes (a renamed archive is still opened), and those it
# cannot (refused by name: the client would send what nobody checked).
_ARCHIVE_MAGIC = ((b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"), (b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"),
                  (b"\xfd7zXZ\x00", "xz"), (b"7z\xbc\xaf\x27\x1c", "7z"), (b"Rar!\x1a\x07", "rar"),
                  (b"\x28\xb5\x2f\xfd", "zstd"))
_UNOPENED = frozenset({"7z", "rar", "zstd"})
MAX_ARCHIVE_DEPTH = 4  # archives inside archives opened this deep; deeper ones are refused
_COMPRESSED_SUFFIXES = {"gzip": (".gz", ".tgz"), "bzip2": (".bz2",), "xz": (".xz",)}


def _archive_kind(head: bytes) -> str | None:
    kind = next((kind for magic, kind in _ARCHIVE_MAGIC if head.startswith(magic)), None)
    if kind is None and head[257:262] == b"ustar":
        return "tar"
    return kind


def _peek(f: BinaryIO, n: int = 512) -> bytes:
    """The first ``n`` bytes of ``f``, which is left where it was."""
    if hasattr(f, "peek"):
        head = f.peek(n)[:n]
        if len(head) >= min(n, 262) or not _seekable(f):
            return head
    head = f.read(n)
    f.seek(-len(head), io.SEEK_CUR)
    return head


def _seekable(f: BinaryIO) -> bool:
    try:
        return f.seekable()
    except (AttributeError, OSError, ValueError):  # a tar member read as a stream cannot even say
        return False


def _scan_content(f: BinaryIO, name: str, needles: list[bytes], depth: int) -> str | None:
    """Why the file ``name`` read from ``f`` holds a credential, or None: its bytes, or its members when it is
    an archive."""
    kind = _archive_kind(_peek(f))
    if kind is None:
        return _scan_bytes(f, needles, _needs_pattern_scan(name.rsplit("/", 1)[-1]) and depth == 0)
    unopened = "it cannot be checked for credentials; unpack it or leave it out"
    if kind in _UNOPENED:
        return f"a {kind} archive arc-kit cannot look inside: {unopened}"
    if depth >= MAX_ARCHIVE_DEPTH:
        return f"an archive nested more than {MAX_ARCHIVE_DEPTH} deep: {unopened}"
    try:
        for member, content in _members(f, kind, name):
            if _is_credential_name(member.rsplit("/", 1)[-1]):
                return f"holds {member}, a credential file name"
            reason = _scan_content(content, member, needles, depth + 1) if content is not None else None
            if reason:
                return f"holds {member}: {reason}"
    except (EOFError, OSError, zipfile.BadZipFile, tarfile.TarError, lzma.LZMAError, zlib.error, RuntimeError,
            NotImplementedError) as e:  # zipfile says NotImplementedError for a method it lacks
        return f"a damaged, encrypted or unsupported {kind} archive ({e}): {unopened}"
    return None


def _members(f: BinaryIO, kind: str, name: str) -> Iterator[tuple[str, BinaryIO | None]]:
    """(member name, its content) of the archive in ``f``; None for a member that is no file (a folder, a link).
    A compressed file is one member: the tar inside it, or the file itself (``kaggle.json.gz`` holds
    ``kaggle.json``)."""
    if kind == "zip":
        with zipfile.ZipFile(f if _seekable(f) else _seekable_copy(f)) as z:
            for info in z.infolist():
                if info.flag_bits & 0x1:
                    raise NotImplementedError(f"{info.filename} is encrypted")
                if info.is_dir():
                    yield info.filename, None
                    continue
                with z.open(info) as member:
                    yield info.filename, member
    elif kind == "tar":
        with tarfile.open(fileobj=f, mode="r|") as t:  # streamed: a tar of weights is never held whole
            for info in t:
                yield info.name, t.extractfile(info) if info.isfile() else None
    else:
        opener = {"gzip": gzip.GzipFile, "bzip2": bz2.BZ2File, "xz": lzma.LZMAFile}[kind]
        inner = next((name[: -len(s)] for s in _COMPRESSED_SUFFIXES[kind] if name.lower().endswith(s)), name)
        with opener(fileobj=f) if kind == "gzip" else opener(f) as member:
            if _archive_kind(_peek(member)) == "tar":
                yield from _members(member, "tar", inner)
            else:
                yield inner.rsplit("/", 1)[-1], member


def _seekable_copy(f: BinaryIO) -> BinaryIO:
    """A zip read from a stream (inside a tar) needs seeking: copied to a temp file, in memory while small."""
    copy = tempfile.SpooledTemporaryFile(max_size=64 * 2**20)
    shutil.copyfileobj(f, copy, SCAN_CHUNK)
    copy.seek(0)
    return copy


def _scan_bytes(f: BinaryIO, needles: list[bytes], patterns: bool) -> str | None:
    """Why the bytes of ``f`` hold a credential, or None. Reads SCAN_CHUNK bytes at a time (weights can be many
    GB), keeping an overlap so a match across two reads is still found. Only files at the top of the folder get
    the pattern scan: inside archives (wheels, checkpoints) hashes in source files would be taken for keys."""
    overlap = max([len(n) for n in needles] + [_PATTERN_OVERLAP])
    tail = b""
    chunk = f.read(SCAN_CHUNK)
    patterns = patterns and b"\0" not in chunk[:8192]  # binary, or UTF-16: the exact scan covers those
    while chunk:
        buffer = tail + chunk
        chunk = f.read(SCAN_CHUNK)
        lowered = buffer.lower()
        if any(n in lowered for n in needles):
            return "contains your Kaggle key/token"
        if patterns:
            reason = _key_like(buffer, start=1 if tail else 0, final=not chunk)
            if reason:
                return reason
        tail = buffer[-overlap:]
    return None


def _key_like(buffer: bytes, start: int, final: bool) -> str | None:
    """A key-shaped string in ``buffer`` from ``start`` (the byte before it gives the look-behind context).
    A hex run reaching the end of a non-final buffer may go on in the next read: it is judged there."""
    for match in _KEY_LIKE.finditer(buffer, start):
        if match.group("hf"):
            return "holds a Hugging Face token (hf_...)"
        if final or match.end() < len(buffer):
            return "holds a Kaggle-key-like string (32 hex characters)"
    return None


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
        raise KaggleRefError(f"{kind} id must be owner/slug, got {ref!r}")
    owner, slug = parts
    if not _SLUG.match(slug) or not 6 <= len(slug) <= 50:
        raise KaggleRefError(f"{kind} slug {slug!r} must be 6-50 characters of a-z, 0-9 and single dashes")
    if not re.match(r"^[A-Za-z0-9]+(?:[_-][A-Za-z0-9]+)*$", owner):
        raise KaggleRefError(f"{kind} owner {owner!r} is not a Kaggle user name")
    return owner, slug


def split_dataset_id(ref: str, what: str = "dataset id") -> tuple[str, str, int | None]:
    """``owner/slug`` or ``owner/slug/version`` split into its parts, checked as Kaggle spells them: owner and
    slug lowercase letters, digits and single dashes, a version a positive integer. No length rule: older datasets
    (``uciml/iris``) have shorter slugs than a new one may. ``what`` names where the id came from (``--dataset``)."""
    parts = ref.split("/")
    if (len(parts) not in (2, 3) or not all(_SLUG.match(p) for p in parts[:2])
            or (len(parts) == 3 and not re.fullmatch(r"[1-9][0-9]*", parts[2]))):
        raise KaggleRefError(f"{what} must be owner/slug or owner/slug/version (lowercase letters, digits and "
                             f"single dashes; a version a positive integer), got {ref!r}")
    return parts[0], parts[1], int(parts[2]) if len(parts) == 3 else None


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
            raise KaggleRefError(f"dataset title {title!r} must be 6-50 characters (it is {len(title)})")
        if self.subtitle and not 20 <= len(self.subtitle) <= 80:
            raise KaggleRefError(f"dataset subtitle must be 20-80 characters (it is {len(self.subtitle)})")
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
    manifest = find_manifest(folder)  # the merged folder's, or the export root's merged/ one
    if manifest is None:
        return text
    rel = manifest.relative_to(folder).as_posix()
    body = manifest.read_text(encoding="utf-8").strip()
    return text + f"\n\n## {rel}\n\n```json\n{body}\n```\n"


def write_dataset_metadata(folder: Path, spec: DatasetSpec) -> Path:
    return _write_metadata(folder, {DATASET_METADATA: spec.metadata(folder)})[0]


def _write_metadata(folder: Path, files: dict[str, dict]) -> list[Path]:
    """Metadata files (name -> content), all made and checked before the first is written."""
    paths = []
    for name, data in files.items():
        paths.append(Path(folder) / name)
        atomic_write_text(paths[-1], json.dumps(data, indent=2) + "\n")
    return paths


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
            raise KaggleRefError(f"model instance slug {self.instance_slug!r} must be a-z, 0-9 and single dashes")
        return {"ownerSlug": self.owner, "modelSlug": self.model_slug, "instanceSlug": self.instance_slug,
                "framework": self.framework, "licenseName": self.licence, "overview": self.description,
                "usage": "Load with transformers from the mounted folder (arc-kit's submission kernel does).",
                "fineTunable": False, "trainingData": []}


    def metadata_files(self, folder: Path) -> dict[str, dict]:
        return {MODEL_METADATA: self.model_metadata(folder), MODEL_INSTANCE_METADATA: self.instance_metadata()}


def write_model_metadata(folder: Path, spec: ModelSpec) -> list[Path]:
    return _write_metadata(folder, spec.metadata_files(folder))


@dataclass
class UploadPlan:
    """What ``prepare_upload`` wrote and what publishing ``folder`` will send (the CLI shows, then sends)."""

    folder: Path
    ref: str  # the dataset ref, or the model's owner/slug
    target: str  # in words, for the listing
    written: list[Path]  # metadata files written into the folder
    files: list[str]  # relative paths sent (metadata left out)
    total_bytes: int
    model: ModelSpec | None = None  # set when publishing as a Kaggle Model

    def print(self, stream: TextIO | None = None) -> None:
        stream = stream or sys.stdout
        print("metadata written: " + ", ".join(str(p) for p in self.written), file=stream)
        print(f"would upload {len(self.files)} files ({self.total_bytes / 1e6:.1f} MB) from {self.folder} to "
              f"{self.target}:", file=stream)
        for rel in self.files:
            print(f"  {rel}", file=stream)


def prepare_upload(folder: Path, ref: str, *, as_model: bool = False, title: str | None = None,
                   licence: str | None = None, description: str = "", public: bool = False,
                   framework: str = "transformers", instance: str = "default",
                   secrets: list[str] | None = None) -> UploadPlan:
    """Check ``folder`` and the ids, write the dataset or model metadata and return the plan. Nothing is written
    into the folder until the metadata is complete and the credential scan has passed (no credentials in
    anything it would send). Sends nothing; ``ValueError`` on bad input. ``secrets`` defaults to the credentials
    the client would use."""
    folder = Path(folder)
    if not folder.is_dir():
        raise KaggleRefError(f"{folder} is not a folder")
    licence_arg = {"licence": licence} if licence else {}
    model = None
    if as_model:
        owner, slug = check_ref(ref, "model")
        model = ModelSpec(owner=owner, model_slug=slug, framework=framework, instance_slug=instance,
                          title=title, description=description, private=not public, **licence_arg)
        files = model.metadata_files(folder)
        target = f"Kaggle model {model.instance_ref}"
    else:
        files = {DATASET_METADATA: DatasetSpec(ref=ref, title=title, description=description,
                                               **licence_arg).metadata(folder)}
        target = f"Kaggle dataset {ref} ({'public' if public else 'private'})"
    refuse_credentials(folder, secrets)
    written = _write_metadata(folder, files)
    entries = upload_entries(folder)
    return UploadPlan(folder, ref, target, written, [rel for rel, _ in entries],
                      sum(path.stat().st_size for _, path in entries), model)
