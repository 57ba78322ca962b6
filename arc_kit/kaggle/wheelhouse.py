"""The offline wheelhouse: the wheels a Kaggle kernel (internet off) installs arc-kit from.

The kernel runs ``pip install --no-index --find-links WHEELHOUSE arc-kit`` *with* dependencies, so pip keeps every
package Kaggle's image already has at a fitting version and takes from the wheelhouse only what is missing. This
module decides what "missing" is, ahead of time, for an image we cannot run here: the image is *declared*
(``KaggleImage``: its Python and its packages, from ``arc_kit/configs/kaggle-image.toml`` or a ``pip list`` of
the real image), and ``resolve`` walks arc-kit's requirements against it, fetching a wheel only for what the image
lacks. pip cannot do this itself: it resolves against the interpreter it runs in, not a declared one, and a
``pip download`` with dependencies would pull the image's multi-GB torch into the wheelhouse.

Nothing the image has is replaced: a requirement the image's version does not meet is a problem to report
(``check_wheelhouse``), not a silent downgrade. An optional extra (``unsloth``) that does not fit is left out,
with the reason.
"""

from __future__ import annotations

import email.parser
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from arc_kit.errors import ArcKitError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

DEFAULT_IMAGE = Path(__file__).resolve().parents[1] / "configs" / "kaggle-image.toml"
PLAN_FILE = "wheelhouse.json"


class WheelhouseError(ArcKitError, RuntimeError):
    """The wheelhouse cannot be built or does not resolve; the message says which package and why."""


@dataclass
class KaggleImage:
    """The kernel's interpreter as declared: Python version, wheel platforms, installed packages."""

    python: str = "3.12"
    packages: dict[str, str] = field(default_factory=dict)  # canonical name -> version
    platforms: tuple[str, ...] = ("manylinux_2_35_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
                                  "manylinux2014_x86_64")  # pip does not expand manylinux tags downwards: list them
    source: str = "declared"

    @classmethod
    def load(cls, path: Path | None = None) -> KaggleImage:
        """From a TOML file (``python``, optional ``platforms``, a ``[packages]`` table); default: the kit's."""
        path = Path(path) if path else DEFAULT_IMAGE
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise WheelhouseError(f"image file {path}: {e}") from None
        packages = data.get("packages")
        if not isinstance(data.get("python"), str) or not isinstance(packages, dict):
            raise WheelhouseError(f"image file {path}: needs python = \"3.x\" and a [packages] table")
        image = cls(python=data["python"], packages={canonicalize_name(k): str(v) for k, v in packages.items()},
                    source=str(path))
        if data.get("platforms"):
            image.platforms = tuple(data["platforms"])
        return image

    @classmethod
    def from_python(cls, python_exe: str | Path = sys.executable) -> KaggleImage:
        """What an interpreter really has (``pip list``): run inside a Kaggle notebook to refresh the declaration,
        or in a test's stand-in venv."""
        version = subprocess.run([str(python_exe), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        listing = subprocess.run([str(python_exe), "-m", "pip", "list", "--format", "json",
                                  "--disable-pip-version-check"], capture_output=True, text=True, check=True).stdout
        packages = {canonicalize_name(p["name"]): p["version"] for p in json.loads(listing)}
        return cls(python=version, packages=packages, source=str(python_exe))

    def to_toml(self) -> str:
        lines = [f"# {self.source}", f'python = "{self.python}"',
                 "platforms = [" + ", ".join(f'"{p}"' for p in self.platforms) + "]", "", "[packages]"]
        lines += [f'"{name}" = "{version}"' for name, version in sorted(self.packages.items())]
        return "\n".join(lines) + "\n"

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    def marker_environment(self, extra: str = "") -> dict[str, str]:
        """What ``python_version < "3.13"``-style markers see inside the kernel."""
        return {"python_version": self.python, "python_full_version": self.python + ".0",
                "implementation_name": "cpython", "platform_python_implementation": "CPython",
                "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
                "platform_machine": "x86_64", "extra": extra}


@dataclass
class WheelInfo:
    name: str  # canonical
    version: str
    requires: list[Requirement]
    path: Path | None = None


def read_wheel(path: Path) -> WheelInfo:
    """Name, version and Requires-Dist of a wheel, from its METADATA (no install)."""
    with zipfile.ZipFile(path) as z:
        meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        meta = email.parser.Parser().parsestr(z.read(meta_name).decode("utf-8"))
    return WheelInfo(canonicalize_name(meta["Name"]), meta["Version"],
                     [Requirement(r) for r in meta.get_all("Requires-Dist") or []], path)


@dataclass
class Resolved:
    name: str
    version: str
    source: str  # "image" or "wheelhouse"
    needed_by: str


@dataclass
class Resolution:
    plan: list[Resolved] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # optional extras that do not fit, with the reason

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {"plan": [vars(r) for r in self.plan], "problems": self.problems, "left_out": self.left_out}


# Finds the wheel for a requirement (downloading it, or looking in a folder); None when there is none.
WheelFinder = Callable[[Requirement], WheelInfo | None]


def resolve(roots: Sequence[Requirement], image: KaggleImage, find: WheelFinder, root_name: str = "arc-kit"
            ) -> Resolution:
    """Walk ``roots`` and their dependencies against ``image``; only what the image lacks is looked up with
    ``find``. First fit, no backtracking: the kit's needs are a handful of pure-Python packages, and the real
    ``pip install`` in the kernel (and in ``tests/test_kaggle_image.py``) is the final judge."""
    result = Resolution()
    chosen: dict[str, Resolved] = {}
    todo: list[tuple[Requirement, str, str]] = [(r, root_name, "") for r in roots]
    while todo:
        req, parent, extra = todo.pop(0)
        if req.marker is not None and not req.marker.evaluate(image.marker_environment(extra)):
            continue
        name = canonicalize_name(req.name)
        have = chosen.get(name)
        if have is not None:
            if not req.specifier.contains(have.version, prereleases=True):
                result.problems.append(f"{parent} needs {req}, but {name} {have.version} ({have.source}) is chosen "
                                       f"for {have.needed_by}")
            continue
        if name in image.packages:
            version = image.packages[name]
            if not req.specifier.contains(version, prereleases=True):
                result.problems.append(f"{parent} needs {req}; the image has {name} {version} (not replaced: "
                                       "pin a version that fits the image, or declare the image you target)")
                continue
            chosen[name] = Resolved(name, version, "image", parent)
            continue
        wheel = find(req)
        if wheel is None:
            result.problems.append(f"{parent} needs {req}: the image lacks it and no wheel for Python "
                                   f"{image.python} was found")
            continue
        chosen[name] = Resolved(name, wheel.version, "wheelhouse", parent)
        for extra_name in req.extras:
            todo += [(r, name, extra_name) for r in wheel.requires]
        todo += [(r, name, "") for r in wheel.requires if r.marker is None or "extra" not in str(r.marker)]
    result.plan = sorted(chosen.values(), key=lambda r: (r.source, r.name))
    return result


# ------------------------------------------------------------------------------------------------------------
# Building


@dataclass
class WheelhouseOptions:
    image: KaggleImage = field(default_factory=KaggleImage.load)
    extras: tuple[str, ...] = ()  # optional requirements, e.g. "unsloth": left out with a reason if they do not fit
    find_links: tuple[Path, ...] = ()  # local folders of wheels pip may take from
    index: bool = True  # False: pip looks only in find_links (offline builds, tests)


def pip_download_command(options: WheelhouseOptions, requirement: str, dest: Path) -> list[str]:
    """``pip download`` of one requirement, no dependencies, for the kernel's interpreter and platform."""
    image = options.image
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(dest),
           "--python-version", image.python, "--implementation", "cp", "--abi", image.abi, "--abi", "abi3",
           "--abi", "none", "--quiet", "--disable-pip-version-check"]
    for platform in image.platforms:
        cmd += ["--platform", platform]
    if not options.index:
        cmd.append("--no-index")
    for folder in options.find_links:
        cmd += ["--find-links", str(folder)]
    return cmd + [requirement]


def local_wheel_command(project: Path, dest: Path, isolated: bool = False) -> list[str]:
    """``pip wheel --no-deps .``: arc_kit is pure Python, so one wheel serves every kernel image."""
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dest)]
    if not isolated:
        cmd.append("--no-build-isolation")  # offline: use the setuptools already installed
    return cmd + [str(project)]


# What setuptools needs to build the arc_kit wheel; nothing else of the tree (runs/, data, build/) is copied.
SOURCE_FILES = ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "setup.py", "MANIFEST.in")
SOURCE_FOLDERS = ("arc_kit", "submission")  # the package, and the kernel entries setup.py maps into it


def stage_source(project: Path, into: Path) -> Path:
    """Copy the package sources to ``into``: an in-tree build would leave build/ behind, and a stale
    build/lib can slip deleted modules into the next wheel."""
    if not (project / "pyproject.toml").is_file() or not (project / "arc_kit").is_dir():
        raise WheelhouseError(f"{project} is not the arc-kit source tree (no pyproject.toml + arc_kit/)")
    staged = into / "src"
    for package in SOURCE_FOLDERS:
        shutil.copytree(project / package, staged / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in SOURCE_FILES:
        if (project / name).is_file():
            shutil.copy2(project / name, staged / name)
    return staged


def download_finder(options: WheelhouseOptions, dest: Path) -> WheelFinder:
    """Fetch the newest wheel meeting a requirement into ``dest`` (pip picks it; we read what arrived)."""

    def find(req: Requirement) -> WheelInfo | None:
        name = canonicalize_name(req.name)
        existing = wheels_by_name(dest).get(name, [])
        fitting = [w for w in existing if req.specifier.contains(w.version, prereleases=True)]
        if fitting:
            return fitting[0]
        spec = f"{req.name}{req.specifier}"
        done = subprocess.run(pip_download_command(options, spec, dest), capture_output=True, text=True)
        if done.returncode != 0:
            return None
        fitting = [w for w in wheels_by_name(dest).get(name, []) if req.specifier.contains(w.version, True)]
        return fitting[0] if fitting else None

    return find


def folder_finder(folder: Path) -> WheelFinder:
    """Look only in ``folder``: the check of a built wheelhouse, offline."""
    wheels = wheels_by_name(folder)

    def find(req: Requirement) -> WheelInfo | None:
        fitting = [w for w in wheels.get(canonicalize_name(req.name), [])
                   if req.specifier.contains(w.version, prereleases=True)]
        return fitting[0] if fitting else None

    return find


def wheels_by_name(folder: Path) -> dict[str, list[WheelInfo]]:
    """Wheels in ``folder`` by canonical name, newest first."""
    by_version = sorted(Path(folder).glob("*.whl"), key=lambda p: parse_wheel_filename(p.name)[1], reverse=True)
    out: dict[str, list[WheelInfo]] = {}
    for path in by_version:
        out.setdefault(parse_wheel_filename(path.name)[0], []).append(read_wheel(path))
    return out


@dataclass
class WheelhouseResult:
    folder: Path
    arc_kit_wheel: Path
    wheels: list[Path]
    resolution: Resolution


def build_wheelhouse(project: Path, dest: Path, options: WheelhouseOptions | None = None,
                     run: Callable[[Sequence[str]], None] | None = None) -> WheelhouseResult:
    """The arc_kit wheel plus every wheel it needs that the image lacks; raises ``WheelhouseError`` when the set
    does not resolve. Wheels no longer needed are removed; ``wheelhouse.json`` records the plan."""
    options = options or WheelhouseOptions()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("arc_kit-*.whl"):
        old.unlink()  # one arc_kit wheel, the fresh one: pip would otherwise pick the highest version
    run = run or (lambda cmd: subprocess.run(list(cmd), check=True))
    with tempfile.TemporaryDirectory(prefix="arc-kit-src-") as tmp:
        run(local_wheel_command(stage_source(Path(project), Path(tmp)), dest))
    built = sorted(dest.glob("arc_kit-*.whl"))
    if len(built) != 1:
        raise WheelhouseError(f"expected one arc_kit wheel in {dest}, found {[p.name for p in built]}")
    arc_kit = read_wheel(built[0])
    finder = download_finder(options, dest)
    resolution = resolve(arc_kit.requires, options.image, finder)
    for extra in options.extras:
        trial = resolve([*arc_kit.requires, Requirement(extra)], options.image, finder)
        if trial.ok:
            resolution = trial
        else:
            resolution.left_out.append(f"{extra}: {trial.problems[0]}")
    keep = {r.name for r in resolution.plan if r.source == "wheelhouse"} | {"arc-kit"}
    for path in dest.glob("*.whl"):
        if parse_wheel_filename(path.name)[0] not in keep:
            path.unlink()
    (dest / PLAN_FILE).write_text(json.dumps({"image": {"python": options.image.python, "source":
                                                        options.image.source}, **resolution.to_json()}, indent=1))
    if not resolution.ok:
        raise WheelhouseError(f"the wheelhouse in {dest} does not resolve against the image "
                              f"({options.image.source}): " + "; ".join(resolution.problems))
    return WheelhouseResult(dest, built[0], sorted(dest.glob("*.whl")), resolution)


def check_wheelhouse(folder: Path, image: KaggleImage) -> Resolution:
    """Does ``folder`` install arc-kit on ``image`` offline? Resolved from its own wheels only."""
    folder = Path(folder)
    kit = wheels_by_name(folder).get("arc-kit", []) if folder.is_dir() else []
    if not kit:
        return Resolution(problems=[f"no arc_kit-*.whl in {folder}"])
    if len(kit) > 1:
        return Resolution(problems=[f"{len(kit)} arc_kit wheels in {folder}: pip would take the newest; keep one"])
    return resolve(kit[0].requires, image, folder_finder(folder))
