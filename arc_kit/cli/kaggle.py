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

DEFAULT_KERNEL_DIR = Path("kernels/arc-kit-submission")
DEFAULT_MAIN = Path("submission/main.py")


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

    from arc_kit.cli.flags import add_settings_file, settings_parent
    from arc_kit.config.run import KernelRuntime, RunSettings, SolverConfig, TTTConfig
    from arc_kit.kaggle.kernel_build import MACHINE_SHAPES, KernelSettings

    kernel = sub.add_parser("kernel", help="build, check, push and follow the submission kernel")
    kernel.set_defaults(handler=lambda _args: kernel.print_help() or 2)
    ksub = kernel.add_subparsers(title="kernel commands", metavar="ACTION")
    p = ksub.add_parser("build", parents=[settings_parent(KernelSettings, KernelRuntime, RunSettings,
                                                          SolverConfig, TTTConfig)],
                        help="write kernel-metadata.json and the code file from submission/main.py",
                        description="Every flag below is a field of a settings dataclass (arc_kit/config/run.py, "
                        "arc_kit/kaggle/kernel_build.py) with the kernel's one default. Nonsense values are refused.")
    p.add_argument("--main", type=Path, default=DEFAULT_MAIN, help="kernel entry to copy (default: %(default)s)")
    p.add_argument("--out", type=Path, default=DEFAULT_KERNEL_DIR, help="kernel folder (default: %(default)s)")
    p.add_argument("--wheelhouse", type=Path, default=None,
                   help="the local wheelhouse folder you upload: checked now, and again by kernel push")
    p.add_argument("--image", type=Path, default=None, help="image TOML the wheelhouse must resolve against")
    add_settings_file(p)
    p.set_defaults(handler=_kernel_build)

    p = ksub.add_parser("check", help="what the built kernel will attach and run, and whether its wheelhouse "
                        "resolves on the image")
    p.add_argument("folder", nargs="?", type=Path, default=DEFAULT_KERNEL_DIR)
    p.add_argument("--wheelhouse", type=Path, default=None, help="local wheelhouse (default: the one built with)")
    p.add_argument("--image", type=Path, default=None)
    p.set_defaults(handler=_kernel_check)

    p = ksub.add_parser("push", help="check, then push the kernel folder (starts a run on Kaggle)")
    p.add_argument("folder", nargs="?", type=Path, default=None, help=f"kernel folder (default: {DEFAULT_KERNEL_DIR})")
    p.add_argument("--folder", dest="folder_option", type=Path, default=None, help="the same, as an option")
    p.add_argument("--timeout", type=int, default=None, help="session timeout in seconds")
    p.add_argument("--accelerator", default=None, choices=MACHINE_SHAPES, help="overrides machine_shape for this push")
    p.add_argument("--wheelhouse", type=Path, default=None, help="local wheelhouse to check (default: the one "
                   "built with)")
    p.add_argument("--image", type=Path, default=None)
    p.set_defaults(handler=_kernel_push)

    p = ksub.add_parser("status", help="poll the run with progress until it ends (--once: ask once)")
    p.add_argument("ref", nargs="?", help="owner/slug (default: the id in --folder's metadata)")
    p.add_argument("--folder", type=Path, default=DEFAULT_KERNEL_DIR)
    p.add_argument("--once", action="store_true", help="print the current state and return")
    p.add_argument("--poll", type=float, default=30.0, help="seconds between polls")
    p.add_argument("--timeout", type=float, default=None, help="give up waiting after this many seconds")
    p.set_defaults(handler=_kernel_status)

    p = ksub.add_parser("output", help="download the run's output files and log")
    p.add_argument("ref", nargs="?")
    p.add_argument("--folder", type=Path, default=DEFAULT_KERNEL_DIR)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(handler=_kernel_output)

    p = sub.add_parser("submit", help="submit a kernel version to the competition (code submission)")
    p.add_argument("--kernel", dest="ref", help="owner/slug (default: the id in --folder's metadata)")
    p.add_argument("--folder", type=Path, default=DEFAULT_KERNEL_DIR)
    p.add_argument("--version", type=int, required=True, help="kernel version number (printed by kernel push)")
    p.add_argument("--competition", default=COMPETITION_SLUG)
    p.add_argument("--message", default="arc-kit submission")
    p.add_argument("--file", default="submission.json", help="the output file the kernel writes")
    p.set_defaults(handler=_submit)


LISTED_FILES = 20  # files a download names (a corpus holds 100k)


def add_data_download(dsub: argparse._SubParsersAction) -> None:
    """`arc-kit data download`, registered by the `data` command (arc_kit/cli_data.py)."""
    p = dsub.add_parser("download", help="fetch and unzip the competition files, or a dataset's (Kaggle credentials)")
    p.add_argument("--competition", default=COMPETITION_SLUG)
    p.add_argument("--dataset", metavar="OWNER/SLUG", help=(
        "fetch this Kaggle dataset instead of the competition's files, e.g. sorokin/nvarc-augmented-puzzles "
        "(docs/corpora.md lists the training corpora)"))
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(handler=_data_download)


def run_standalone(command: list[str], argv: list[str] | None = None) -> int:
    """Run an ``arc-kit`` command from a script (the scripts/ wrappers): ``command`` then ``argv`` (default: the
    script's own arguments)."""
    from arc_kit.cli.main import main

    return main([*command, *(sys.argv[1:] if argv is None else argv)])


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
    from arc_kit.kaggle.wheelhouse import KaggleImage, WheelhouseConfig, build_wheelhouse

    config = WheelhouseConfig(image=KaggleImage.load(args.image), extras=tuple(args.extras),
                              find_links=tuple(args.find_links), index=not args.no_index)
    result = build_wheelhouse(args.project, args.out, config)
    print(f"wheelhouse {result.folder}: {len(result.wheels)} wheels for Python {config.image.python} "
          f"({config.image.source})")
    for r in result.resolution.plan:
        print(f"  {r.name} {r.version}  from the {r.source}  (for {r.needed_by})")
    for why in result.resolution.left_out:
        print(f"  left out: {why}")
    print(f"publish it: arc-kit upload-weights {result.folder} --id OWNER/arc-kit-wheelhouse "
          f"--description 'Offline wheels for arc-kit kernels (Python {config.image.python})'")
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
    from arc_kit.cli.flags import plan_from_args, settings_from_args
    from arc_kit.kaggle.kernel_build import KernelSettings, build_kernel

    settings = settings_from_args(args, KernelSettings)
    settings.owner = _owner(settings.owner or None)
    plan = plan_from_args(args)
    info = {"wheelhouse": str(args.wheelhouse.resolve()) if args.wheelhouse else None,
            "image": str(args.image.resolve()) if args.image else None}
    paths = build_kernel(args.main, args.out, settings, plan, build_info=info)
    print(f"kernel {settings.ref} built in {args.out}: {paths['code'].name}, {paths['metadata'].name}")
    return _report_check(args.out, args.wheelhouse, args.image)


@_guarded
def _kernel_check(args: argparse.Namespace) -> int:
    return _report_check(args.folder, args.wheelhouse, args.image)


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


@_guarded
def _kernel_push(args: argparse.Namespace) -> int:
    from arc_kit.kaggle import client

    folder = args.folder or args.folder_option or DEFAULT_KERNEL_DIR
    if _report_check(folder, args.wheelhouse, args.image):
        return _fail(f"not pushed: fix the problems above (arc-kit kernel check {folder})")
    result = client.push_kernel(folder, args.timeout, args.accelerator)
    ref = _kernel_ref(None, folder)
    print(f"pushed {ref} version {result.version}: {result.url or ''}")
    print(f"follow it: arc-kit kernel status {ref};  then: arc-kit submit --kernel {ref} "
          f"--version {result.version}")
    return 0


@_guarded
def _kernel_status(args: argparse.Namespace) -> int:
    from arc_kit.kaggle import client

    ref = _kernel_ref(args.ref, args.folder)
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

    ref = _kernel_ref(args.ref, args.folder)
    files = client.kernel_output(ref, args.out)
    print(f"{len(files)} files from {ref} in {args.out}:")
    for path in files:
        print(f"  {path}")
    return 0


@_guarded
def _submit(args: argparse.Namespace) -> int:
    from arc_kit.kaggle import client

    ref = _kernel_ref(args.ref, args.folder)
    message = client.submit_kernel(args.competition, ref, args.version, args.message, args.file)
    print(f"{ref} v{args.version} -> {args.competition}: {message}")
    return 0


@_guarded
def _data_download(args: argparse.Namespace) -> int:
    from arc_kit.kaggle import client

    name = args.dataset or args.competition
    if args.dataset:
        files = client.download_dataset(args.dataset, args.out)
    else:
        files = client.download_competition(args.competition, args.out)
    print(f"{len(files)} files of {name} in {args.out}")
    for path in files[:LISTED_FILES]:
        print(f"  {path}")
    if len(files) > LISTED_FILES:
        print(f"  ... and {len(files) - LISTED_FILES} more")
    return 0
