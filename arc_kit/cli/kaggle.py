"""`arc-kit` sub-commands for Kaggle: upload weights, build the wheelhouse, build/push/watch the kernel, submit,
download competition data. Imports stay inside the handlers so `arc-kit --help` is instant and nothing here
needs credentials until a command talks to Kaggle."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from arc_kit import COMPETITION_SLUG
from arc_kit.cli.flags import input_errors
from arc_kit.config.schema import SettingsError

KERNELS_DIR = Path("kernels")


def kernel_dir(kind: str) -> Path:
    """Where ``arc-kit kernel build --kind KIND`` writes its folder by default."""
    from arc_kit.kaggle.kernel_build import default_slug

    return KERNELS_DIR / default_slug(kind)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this area's sub-commands on the top-level parser."""
    p = sub.add_parser("upload-weights", help="publish an exported model folder as a private Kaggle dataset/model")
    p.add_argument("folder", type=Path, help="exported model folder (sub-folders are kept)")
    p.add_argument("--id", dest="ref", required=True, help="owner/slug of the dataset (or owner/model-slug)")
    p.add_argument("--title", help="6-50 characters (default: from the slug)")
    p.add_argument("--licence", default=None, help="dataset licence name (default other) or model licence")
    p.add_argument("--description", default="", help="text before the arc_kit manifest in the description")
    p.add_argument("--notes", default="arc-kit upload", help="version notes")
    p.add_argument("--public", action="store_true", help="publish publicly (default: private)")
    p.add_argument("--as-model", action="store_true", help="publish as a Kaggle Model instead of a dataset")
    p.add_argument("--framework", default="transformers", help="model framework (with --as-model)")
    p.add_argument("--instance", default="default", help="model instance slug (with --as-model)")
    p.add_argument("--dry-run", action="store_true", help="write the metadata and list the files; send nothing")
    p.set_defaults(handler=_upload_weights)

    p = sub.add_parser("wheelhouse", help="build the offline wheel folder the kernel installs arc-kit from",
                       description="The arc_kit wheel plus every wheel it needs that the Kaggle image lacks, "
                       "resolved against the declared image (never replacing one of its packages).")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--project", type=Path, default=Path("."), help="arc-kit source tree (default: .)")
    p.add_argument("--image", type=Path, default=None,
                   help="the kernel image as TOML (default: arc_kit/configs/kaggle-image.toml; see `image freeze`)")
    p.add_argument("--extra", action="append", default=[], dest="extras",
                   help="an optional requirement, e.g. unsloth: included only if it fits the image (repeatable)")
    p.add_argument("--find-links", action="append", default=[], type=Path, help="a local folder of wheels")
    p.add_argument("--no-index", action="store_true", help="take wheels only from --find-links (offline)")
    p.set_defaults(handler=_wheelhouse)

    p = sub.add_parser("image", help="the Kaggle image the wheelhouse is resolved against")
    p.set_defaults(handler=lambda _args: p.print_help() or 2)
    isub = p.add_subparsers(title="image commands", metavar="ACTION")
    q = isub.add_parser("freeze", help="write this interpreter's Python and packages as an image TOML (run it in "
                        "a Kaggle notebook to refresh the declaration)")
    q.add_argument("--out", type=Path, required=True)
    q.set_defaults(handler=_image_freeze)

    from arc_kit.cli.flags import add_set_flag, settings_parent
    from arc_kit.config.kernels import KINDS, EvaluateSettings, TrainKernelSettings
    from arc_kit.config.run import KernelSettings, RunSettings, SolverSettings, SubmissionConfig, TTTSettings
    from arc_kit.kaggle.kernel_build import MACHINE_SHAPES, KernelMetadataSettings

    kernel = sub.add_parser("kernel", help="build, check, push and follow a kernel: submission, evaluate or train")
    kernel.set_defaults(handler=lambda _args: kernel.print_help() or 2)
    ksub = kernel.add_subparsers(title="kernel commands", metavar="ACTION")
    p = ksub.add_parser("build", parents=[settings_parent(KernelMetadataSettings, KernelSettings, RunSettings,
                                                          SolverSettings, TTTSettings, EvaluateSettings,
                                                          TrainKernelSettings)],
                        help="write kernel-metadata.json and the code file from the kernel entry "
                        "(submission/main.py) for a kind of kernel (--kind)",
                        description="Every flag below is a field of a settings dataclass (arc_kit/config/run.py, "
                        "arc_kit/config/kernels.py, arc_kit/kaggle/kernel_build.py) with the kernel's one default; a "
                        "flag of a table the kind does not have is refused, as are nonsense values. submission and "
                        "evaluate take the run's settings (--settings, the [run]/[solver]/[ttt] flags; evaluate adds "
                        "--data, --solutions, --max-tasks); train takes a training config (--config) and the "
                        "[kernel] flags --base-model-source, --resume-kernel, --budget-seconds.")
    p.add_argument("--main", type=Path, default=None, help="kernel entry to copy (default: the kit's own, "
                   "submission/main.py, installed with it)")
    p.add_argument("--out", type=Path, default=None, help=f"kernel folder (default: {kernel_dir('<kind>')})")
    p.add_argument("--wheelhouse", type=Path, default=None,
                   help="the local wheelhouse folder you upload: checked now, and again by kernel push")
    p.add_argument("--image", type=Path, default=None, help="image TOML the wheelhouse must resolve against")
    p.add_argument("--settings", type=Path, default=None, metavar="TOML",
                   help="submission, evaluate: a settings file with [kernel], [run], [solver] and [ttt] tables "
                        "(evaluate: also [evaluate]); flags given override it")
    p.add_argument("--config", default=None, metavar="TOML", help="train: the training config (a file or a "
                   "built-in name, as arc-kit train --config takes), copied into the kernel; a [kernel] table may "
                   "hold the training kernel's settings")
    # --set fills the kind's config (arc_kit.config.kernels.KIND_CONFIGS); declared: the default kind's
    add_set_flag(p, SubmissionConfig, help="set one setting of the kind's tables, e.g. --set solver.views=4 or, for "
                 "train, --set train.learning_rate=2e-4 (repeatable; after --settings/--config, before flags)")
    p.set_defaults(handler=_kernel_build)

    def kind_and_folder(p: argparse.ArgumentParser) -> None:
        p.add_argument("--kind", choices=KINDS, default=None,
                       help=f"the kind of kernel, whose folder is {kernel_dir('<kind>')} (default: submission)")

    p = ksub.add_parser("check", help="what the built kernel will attach and run, and whether its wheelhouse "
                        "resolves on the image")
    p.add_argument("folder", nargs="?", type=Path, default=None, help="kernel folder (default: the --kind's)")
    kind_and_folder(p)
    p.add_argument("--wheelhouse", type=Path, default=None, help="local wheelhouse (default: the one built with)")
    p.add_argument("--image", type=Path, default=None)
    p.set_defaults(handler=_kernel_check)

    p = ksub.add_parser("push", help="check, then push the kernel folder (starts a run on Kaggle)")
    p.add_argument("folder", nargs="?", type=Path, default=None, help="kernel folder (default: the --kind's)")
    p.add_argument("--folder", dest="folder_option", type=Path, default=None, help="the same, as an option")
    kind_and_folder(p)
    p.add_argument("--timeout", type=int, default=None, help="session timeout in seconds")
    p.add_argument("--accelerator", default=None, choices=MACHINE_SHAPES, help="overrides machine_shape for this push")
    p.add_argument("--wheelhouse", type=Path, default=None, help="local wheelhouse to check (default: the one "
                   "built with)")
    p.add_argument("--image", type=Path, default=None)
    p.set_defaults(handler=_kernel_push)

    p = ksub.add_parser("status", help="poll the run with progress until it ends (--once: ask once)")
    p.add_argument("ref", nargs="?", help="owner/slug (default: the id in the kernel folder's metadata)")
    p.add_argument("--folder", type=Path, default=None, help="kernel folder (default: the --kind's)")
    kind_and_folder(p)
    p.add_argument("--once", action="store_true", help="print the current state and return")
    p.add_argument("--poll", type=float, default=30.0, help="seconds between polls")
    p.add_argument("--timeout", type=float, default=None, help="give up waiting after this many seconds")
    p.set_defaults(handler=_kernel_status)

    p = ksub.add_parser("output", help="download a run's output files and log (one version's: --version)")
    p.add_argument("ref", nargs="?", help="owner/slug (default: the id in the kernel folder's metadata)")
    p.add_argument("--folder", type=Path, default=None, help="kernel folder (default: the --kind's)")
    kind_and_folder(p)
    p.add_argument("--version", type=int, default=None, help="the version whose output to fetch (default: the "
                   "latest run); fetch each version into its own --out to pool them with arc-kit select")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(handler=_kernel_output)

    p = sub.add_parser("submit", help="submit a kernel version to the competition (code submission)")
    p.add_argument("--kernel", dest="ref", help="owner/slug (default: the id in --folder's metadata)")
    p.add_argument("--folder", type=Path, default=None, help=f"kernel folder (default: {kernel_dir('submission')})")
    p.add_argument("--version", type=int, required=True, help="kernel version number (printed by kernel push)")
    p.add_argument("--competition", default=COMPETITION_SLUG)
    p.add_argument("--message", default="arc-kit submission")
    p.add_argument("--file", default="submission.json", help="the output file the kernel writes")
    p.set_defaults(handler=_submit)


LISTED_FILES = 20  # files a download names (a corpus holds 100k)


def add_data_download(dsub: argparse._SubParsersAction) -> None:
    """`arc-kit data download`, registered by the `data` command (``arc_kit.cli.data``)."""
    p = dsub.add_parser("download", help="fetch and unzip the competition files, or a dataset's (Kaggle credentials)")
    p.add_argument("--competition", default=argparse.SUPPRESS,  # absent leaves no attribute: given is told apart
                   help=f"the competition whose files to fetch (default: {COMPETITION_SLUG})")
    p.add_argument("--dataset", metavar="OWNER/SLUG", help=(
        "fetch this Kaggle dataset instead of the competition's files, e.g. sorokin/nvarc-augmented-puzzles "
        "(docs/corpora.md lists the training corpora)"))
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(handler=_data_download)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _guarded(handler):  # type: ignore[no-untyped-def]
    """Bad input (ids, settings, files) is one line and exit 2 (``input_errors``); a failure on Kaggle's side or
    in the wheelhouse is one line and exit 1."""

    @input_errors
    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        from arc_kit.kaggle.client import KaggleError
        from arc_kit.kaggle.wheelhouse import WheelhouseError

        try:
            return handler(args)
        except (KaggleError, WheelhouseError) as exc:
            return _fail(str(exc))

    return run


def _owner(explicit: str | None) -> str:
    from arc_kit.kaggle.upload import configured_username

    owner = explicit or configured_username()
    if not owner:
        raise SettingsError("no Kaggle user name: pass --owner/--id owner/slug, or set KAGGLE_USERNAME")
    return owner


def _kernel_ref(ref: str | None, folder: Path) -> str:
    if ref:
        return ref
    from arc_kit.kaggle.kernel_build import read_metadata

    return str(read_metadata(folder)["id"])


# ---- handlers


@_guarded
def _upload_weights(args: argparse.Namespace) -> int:
    from arc_kit.kaggle import upload

    plan = upload.prepare_upload(args.folder, args.ref, as_model=args.as_model, title=args.title,
                                 licence=args.licence, description=args.description, public=args.public,
                                 framework=args.framework, instance=args.instance)
    plan.print()
    if args.dry_run:
        print("dry run: nothing sent")
        return 0
    from arc_kit.kaggle import client

    if plan.model:
        m = plan.model
        result = client.publish_model(plan.folder, m.owner, m.model_slug, m.framework, m.instance_slug,
                                         args.notes)
        print(f"model {result.action}: {result.ref}  (kernel model source: --weights-model {result.ref})")
    else:
        result = client.publish_dataset(plan.folder, plan.ref, args.notes, public=args.public)
        print(f"dataset {result.action}: {result.ref} {result.url or ''}  "
              f"(kernel: --weights-dataset {plan.ref})")
    return 0


@_guarded
def _wheelhouse(args: argparse.Namespace) -> int:
    from arc_kit.kaggle.wheelhouse import KaggleImage, WheelhouseOptions, build_wheelhouse

    options = WheelhouseOptions(image=KaggleImage.load(args.image), extras=tuple(args.extras),
                                find_links=tuple(args.find_links), index=not args.no_index)
    result = build_wheelhouse(args.project, args.out, options)
    print(f"wheelhouse {result.folder}: {len(result.wheels)} wheels for Python {options.image.python} "
          f"({options.image.source})")
    for r in result.resolution.plan:
        print(f"  {r.name} {r.version}  from the {r.source}  (for {r.needed_by})")
    for why in result.resolution.left_out:
        print(f"  left out: {why}")
    print(f"publish it: arc-kit upload-weights {result.folder} --id OWNER/arc-kit-wheelhouse "
          f"--description 'Offline wheels for arc-kit kernels (Python {options.image.python})'")
    return 0


@_guarded
def _image_freeze(args: argparse.Namespace) -> int:
    from arc_kit.core.files import atomic_write_text
    from arc_kit.kaggle.wheelhouse import KaggleImage

    image = KaggleImage.from_python()
    atomic_write_text(args.out, image.to_toml())
    print(f"{args.out}: Python {image.python}, {len(image.packages)} packages")
    return 0


@_guarded
def _kernel_build(args: argparse.Namespace) -> int:
    from arc_kit.cli.flags import settings_from_args
    from arc_kit.kaggle.kernel_build import KernelMetadataSettings, build_kernel, kernel_entry

    settings = settings_from_args(args, KernelMetadataSettings)
    settings.owner = _owner(settings.owner or None)
    config, for_the_reader = _kind_config(args, settings.kind)
    out = args.out or kernel_dir(settings.kind)
    info = {"wheelhouse": str(args.wheelhouse.resolve()) if args.wheelhouse else None,
            "image": str(args.image.resolve()) if args.image else None}
    paths = build_kernel(args.main or kernel_entry(settings.kind), out, settings, config, build_info=info,
                         for_the_reader=for_the_reader)
    print(f"{settings.kind} kernel {settings.ref} built in {out}: {paths['code'].name}, {paths['metadata'].name}")
    return _report_check(out, args.wheelhouse, args.image)


def _kind_config(args: argparse.Namespace, kind: str) -> tuple[object, dict[str, str]]:
    """The kind's config from its settings file, ``--set`` and flags; a flag, file or option another kind takes is
    refused in one line. Also the files written beside the code for the reader (train: the config as given)."""
    from arc_kit.cli.flags import SETTINGS_CLASSES, config_from_args, config_tables, flag_names
    from arc_kit.config.kernels import KIND_CONFIGS
    from arc_kit.config.training import resolve_config_path
    from arc_kit.kaggle.kernel_build import KernelMetadataSettings

    config_class = KIND_CONFIGS[kind]
    mine = [KernelMetadataSettings, *config_tables(config_class)]
    allowed = set().union(*(flag_names(cls) for cls in mine))
    ignored = {key.split(".")[-1]: why for key, why in getattr(config_class, "IGNORED", {}).items()}
    for cls in getattr(args, SETTINGS_CLASSES, ()):
        for name in sorted(flag_names(cls) & set(vars(args))):
            if name not in allowed or name in ignored:
                why = ignored.get(name) or f"the {kind} kernel has no such setting"
                raise SettingsError(f"--{name.replace('_', '-')} does not apply to the {kind} kernel ({why})")
    given_file, wrong_file = ("config", "settings") if kind == "train" else ("settings", "config")
    if getattr(args, wrong_file) is not None:
        raise SettingsError(f"--{wrong_file} does not apply to the {kind} kernel: give its settings with "
                            f"--{given_file}")
    if kind != "train":
        return config_from_args(args, config_class, overrides=list(args.set)), {}
    if args.config is None:
        raise SettingsError("the train kernel needs its training config: --config FILE (or a built-in name, e.g. "
                            "gpu-qwen)")
    path = resolve_config_path(args.config)
    config = config_from_args(args, config_class, path=path, overrides=list(args.set))
    sets = "".join(f"#   --set {text}\n" for text in args.set)
    header = (f"# {path.name} as given to arc-kit kernel build, for the reader: the kernel runs the settings in its "
              "code file\n" + (f"# with these overrides:\n{sets}" if sets else ""))
    return config, {"train-config.toml": header + path.read_text(encoding="utf-8")}


@_guarded
def _kernel_check(args: argparse.Namespace) -> int:
    return _report_check(args.folder or kernel_dir(args.kind or "submission"), args.wheelhouse, args.image)


def _report_check(folder: Path, wheelhouse: Path | None, image: Path | None) -> int:
    """Print what the kernel attaches, on which machine, with which settings, and whether its wheelhouse resolves;
    1 when something would make the Kaggle run fail."""
    from arc_kit.kaggle.kernel_check import check_kernel

    check = check_kernel(folder, wheelhouse, image)
    for line in check.lines:
        print(line)
    for warning in check.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for problem in check.problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if check.problems else 0


def _folder(args: argparse.Namespace, *given: Path | None) -> Path:
    """The kernel folder a command works on: the one given, else the ``--kind``'s (default: submission)."""
    return next((f for f in given if f is not None), None) or kernel_dir(args.kind or "submission")


@_guarded
def _kernel_push(args: argparse.Namespace) -> int:
    from arc_kit.kaggle import client
    from arc_kit.kaggle.kernel_build import read_settings

    folder = _folder(args, args.folder, args.folder_option)
    if _report_check(folder, args.wheelhouse, args.image):
        return _fail(f"not pushed: fix the problems above (arc-kit kernel check {folder})")
    result = client.push_kernel(folder, args.timeout, args.accelerator)
    ref = _kernel_ref(None, folder)
    kind = read_settings(folder)[0]
    print(f"pushed {kind} kernel {ref} version {result.version}: {result.url or ''}")
    print(f"follow it: arc-kit kernel status --kind {kind};  then: " + {
        "submission": f"arc-kit submit --kernel {ref} --version {result.version}",
        "evaluate": f"arc-kit kernel output --kind evaluate --version {result.version} --out runs/{ref.split('/')[1]}"
                    f"-v{result.version}, then arc-kit select that folder",
        "train": f"build the submission and evaluation kernels with --weights-kernel {ref} once it finished, or "
                 f"build this one again with --resume-kernel {ref} if it stopped at its budget",
    }[kind])
    return 0


@_guarded
def _kernel_status(args: argparse.Namespace) -> int:
    from arc_kit.kaggle import client

    ref = _kernel_ref(args.ref, _folder(args, args.folder))
    if args.once:
        status = client.kernel_status(ref)
    else:
        def show(s: client.KernelStatus, elapsed: float) -> None:
            print(f"[{elapsed:7.0f}s] {ref}: {s.state}", flush=True)

        status = client.wait_for_kernel(ref, poll_seconds=args.poll, timeout_seconds=args.timeout, on_poll=show)
    print(f"{ref}: {status.state}" + (f" ({status.failure_message})" if status.failure_message else ""))
    return 1 if status.state == "ERROR" else 0


@_guarded
def _kernel_output(args: argparse.Namespace) -> int:
    from arc_kit.kaggle import client

    ref = _kernel_ref(args.ref, _folder(args, args.folder))
    if args.version is not None and args.version < 1:
        raise SettingsError(f"--version must be >= 1, got {args.version}")
    files = client.kernel_output(ref, args.out, args.version)
    which = f" version {args.version}" if args.version is not None else ""
    print(f"{len(files)} files from {ref}{which} in {args.out}:")
    for path in files:
        print(f"  {path}")
    if (args.out / "report.json").is_file():
        print(f"re-rank its candidates: arc-kit select {args.out} --solutions arc-agi-2/evaluation (several "
              "folders, one per version, pool their candidates)")
    return 0


@_guarded
def _submit(args: argparse.Namespace) -> int:
    from arc_kit.kaggle import client

    ref = _kernel_ref(args.ref, args.folder or kernel_dir("submission"))
    message = client.submit_kernel(args.competition, ref, args.version, args.message, args.file)
    print(f"{ref} v{args.version} -> {args.competition}: {message}")
    return 0


@_guarded
def _data_download(args: argparse.Namespace) -> int:
    from arc_kit.core.files import check_folder_path
    from arc_kit.kaggle import client
    from arc_kit.kaggle.upload import split_dataset_id

    if args.dataset is not None:
        if hasattr(args, "competition"):
            raise SettingsError("--dataset and --competition are two different downloads: give one of them")
        split_dataset_id(args.dataset, "--dataset")
    out = check_folder_path(args.out, "--out")
    if args.dataset is not None:
        name = args.dataset
        files = client.download_dataset(args.dataset, out)
    else:
        name = getattr(args, "competition", COMPETITION_SLUG)
        files = client.download_competition(name, out)
    print(f"{len(files)} files of {name} in {args.out}")
    for path in files[:LISTED_FILES]:
        print(f"  {path}")
    if len(files) > LISTED_FILES:
        print(f"  ... and {len(files) - LISTED_FILES} more")
    return 0
