"""The offline wheelhouse: wheels the kernel installs with ``pip install --no-index --find-links DIR``.

The kernel has no internet, so everything it needs beyond the Kaggle image travels as a dataset of wheels:
the arc_kit wheel itself (built here from the source tree) and pinned extras (Unsloth and companions),
downloaded for the kernel image's Python and platform rather than this machine's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# What the kernel needs beyond the Kaggle image (which has torch, transformers, peft, accelerate).
# Pinned: unsloth 2026.10.5 is the newest whose own pins install here (see notes/training-stack.md);
# trl/datasets satisfy arc-kit's own requirements (trl>=1.16, datasets<6) and datasets<5 for unsloth;
# kaggle/kagglesdk/six are in arc-kit's dependency list, so `pip install arc-kit` with deps needs them.
DEFAULT_EXTRAS = (
    "unsloth==2026.10.5",
    "unsloth_zoo==2026.10.5",
    "trl==1.16.0",
    "datasets==4.8.5",
    "kaggle==2.2.4",
    "kagglesdk==0.1.37",
    "six==1.17.0",
)
# manylinux_2_X tags are not expanded downwards by pip: list the ones the image (glibc 2.35) accepts.
DEFAULT_PLATFORMS = ("manylinux_2_35_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
                     "manylinux2014_x86_64")

Runner = Callable[[Sequence[str]], None]


@dataclass
class WheelhouseConfig:
    python_version: str = "3.11"  # the kernel image's Python: "3.11" (cp311) or "3.12" (cp312)
    platforms: tuple[str, ...] = DEFAULT_PLATFORMS
    packages: tuple[str, ...] = DEFAULT_EXTRAS
    with_deps: bool = False  # False: exactly the listed pins (deps come from the image or the list)

    def check(self) -> None:
        if self.python_version not in ("3.10", "3.11", "3.12", "3.13"):
            raise ValueError(f"python_version must look like 3.11 or 3.12, got {self.python_version!r}")
        unpinned = [p for p in self.packages if "==" not in p]
        if unpinned:
            raise ValueError(f"wheelhouse packages must be pinned (name==version): {unpinned}")

    @property
    def abi(self) -> str:
        return "cp" + self.python_version.replace(".", "")


def download_command(config: WheelhouseConfig, dest: Path) -> list[str]:
    """``pip download`` for the kernel's interpreter and platform, binary wheels only."""
    config.check()
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--dest", str(dest),
           "--python-version", config.python_version, "--implementation", "cp", "--abi", config.abi,
           "--abi", "abi3", "--abi", "none"]
    for platform in config.platforms:
        cmd += ["--platform", platform]
    if not config.with_deps:
        cmd.append("--no-deps")
    return cmd + list(config.packages)


def local_wheel_command(project: Path, dest: Path, isolated: bool = False) -> list[str]:
    """``pip wheel --no-deps .``: arc_kit is pure Python, so one wheel serves every kernel image."""
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dest)]
    if not isolated:
        cmd.append("--no-build-isolation")  # offline: use the setuptools already installed
    return cmd + [str(project)]


# What setuptools needs to build the arc_kit wheel; nothing else of the tree (runs/, data, build/) is copied.
SOURCE_FILES = ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "setup.py", "MANIFEST.in")


def stage_source(project: Path, into: Path) -> Path:
    """Copy the package sources to ``into``: an in-tree build would leave build/ behind, and a stale
    build/lib can slip deleted modules into the next wheel."""
    if not (project / "pyproject.toml").is_file() or not (project / "arc_kit").is_dir():
        raise FileNotFoundError(f"{project} is not the arc-kit source tree (no pyproject.toml + arc_kit/)")
    staged = into / "src"
    shutil.copytree(project / "arc_kit", staged / "arc_kit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in SOURCE_FILES:
        if (project / name).is_file():
            shutil.copy2(project / name, staged / name)
    return staged


def _run(cmd: Sequence[str]) -> None:
    subprocess.run(list(cmd), check=True)


@dataclass
class WheelhouseResult:
    folder: Path
    arc_kit_wheel: Path
    wheels: list[Path] = field(default_factory=list)


def build_wheelhouse(project: Path, dest: Path, config: WheelhouseConfig, download: bool = True,
                     run: Runner = _run) -> WheelhouseResult:
    """Build the arc_kit wheel into ``dest`` and (unless ``download`` is False) fetch the pinned extras."""
    config.check()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("arc_kit-*.whl"):
        old.unlink()  # one arc_kit wheel, the fresh one: pip would otherwise pick the highest version
    with tempfile.TemporaryDirectory(prefix="arc-kit-src-") as tmp:
        run(local_wheel_command(stage_source(Path(project), Path(tmp)), dest))
    built = sorted(dest.glob("arc_kit-*.whl"))
    if len(built) != 1:
        raise RuntimeError(f"expected one arc_kit wheel in {dest}, found {[p.name for p in built]}")
    if download and config.packages:
        run(download_command(config, dest))
    requirements = ["arc-kit", *config.packages]
    (dest / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    return WheelhouseResult(folder=dest, arc_kit_wheel=built[0], wheels=sorted(dest.glob("*.whl")))
