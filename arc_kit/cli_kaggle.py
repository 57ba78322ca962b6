"""`arc-kit` sub-commands for Kaggle: upload weights, build the wheelhouse, build/push/watch the kernel, submit,
download competition data. Imports stay inside the handlers so `arc-kit --help` is instant and nothing here
needs credentials until a command talks to Kaggle."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arc_kit import COMPETITION_SLUG

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

    p = sub.add_parser("wheelhouse", help="build the offline wheel folder the kernel installs from")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--project", type=Path, default=Path("."), help="arc-kit source tree (default: .)")
    p.add_argument("--python-version", default="3.11", help="the kernel image's Python (3.11 or 3.12)")
    p.add_argument("--platform", action="append", dest="platforms", help="wheel platform tag (repeatable)")
    p.add_argument("--package", action="append", dest="packages", help="pinned extra name==version (repeatable; "
                   "replaces the default list)")
    p.add_argument("--with-deps", action="store_true", help="also download the extras' dependencies")
    p.add_argument("--no-download", action="store_true", help="only build the arc_kit wheel")
    p.set_defaults(handler=_wheelhouse)

    kernel = sub.add_parser("kernel", help="build, push and follow the submission kernel")
    kernel.set_defaults(handler=lambda _args: kernel.print_help() or 2)
    ksub = kernel.add_subparsers(title="kernel commands", metavar="ACTION")
    p = ksub.add_parser("build", help="write kernel-metadata.json and the code file from submission/main.py")
    p.add_argument("--owner", help="Kaggle user name (default: from KAGGLE_USERNAME or kaggle.json)")
    p.add_argument("--slug", default="arc-kit-submission")
    p.add_argument("--main", type=Path, default=DEFAULT_MAIN, help="kernel entry to copy (default: %(default)s)")
    p.add_argument("--out", type=Path, default=DEFAULT_KERNEL_DIR, help="kernel folder (default: %(default)s)")
    p.add_argument("--competition", default=COMPETITION_SLUG)
    p.add_argument("--weights-dataset", help="owner/slug of the weights dataset")
    p.add_argument("--weights-model", help="owner/model/framework/instance/N of the weights model")
    p.add_argument("--wheelhouse-dataset", help="owner/slug of the wheelhouse dataset")
    p.add_argument("--dataset", action="append", default=[], help="another dataset to attach (repeatable)")
    p.add_argument("--budget-seconds", type=float, default=12 * 3600)
    p.add_argument("--margin-seconds", type=float, default=45 * 60)
    p.add_argument("--task-cap-seconds", type=float, default=600)
    p.add_argument("--views", type=int, default=8)
    p.add_argument("--quick-tasks", type=int, default=None, help="stop after N tasks (a quick check run)")
    p.add_argument("--notebook", action="store_true", help="push as a notebook (generated from the script)")
    p.add_argument("--machine-shape", default=None, help="accelerator, e.g. NvidiaL4 (default: Kaggle's GPU)")
    p.add_argument("--pinning", default="original", choices=("original", "latest"),
                   help="docker_image_pinning_type")
    p.set_defaults(handler=_kernel_build)

    p = ksub.add_parser("push", help="push the kernel folder (starts a run on Kaggle)")
    p.add_argument("--folder", type=Path, default=DEFAULT_KERNEL_DIR)
    p.add_argument("--timeout", type=int, default=None, help="session timeout in seconds")
    p.add_argument("--accelerator", default=None, help="overrides machine_shape for this push")
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

    data = sub.add_parser("data", help="competition data")
    data.set_defaults(handler=lambda _args: data.print_help() or 2)
    dsub = data.add_subparsers(title="data commands", metavar="ACTION")
    p = dsub.add_parser("download", help="fetch and unzip the competition files")
    p.add_argument("--competition", default=COMPETITION_SLUG)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(handler=_data_download)


def run_standalone(command: list[str], argv: list[str] | None = None) -> int:
    """Run one of these commands outside ``arc-kit`` (the scripts/ wrappers)."""
    parser = argparse.ArgumentParser(prog="arc-kit")
    add_commands(parser.add_subparsers())
    args = parser.parse_args([*command, *(sys.argv[1:] if argv is None else argv)])
    return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    return int(args.handler(args) or 0)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _guarded(handler):  # type: ignore[no-untyped-def]
    """Expected failures (Kaggle, credentials, bad ids) end in one clear line, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        from arc_kit.kaggle_io import KaggleError
        from arc_kit.kernel_build import KernelBuildError

        try:
            return handler(args)
        except (KaggleError, KernelBuildError, ValueError, FileNotFoundError) as exc:
            return _fail(str(exc))

    run.__name__ = handler.__name__
    return run


def _owner(explicit: str | None) -> str:
    from arc_kit.upload import configured_username

    owner = explicit or configured_username()
    if not owner:
        raise ValueError("no Kaggle user name: pass --owner/--id owner/slug, or set KAGGLE_USERNAME")
    return owner


def _kernel_ref(ref: str | None, folder: Path) -> str:
    if ref:
        return ref
    from arc_kit.kernel_build import settings_from_metadata

    if not (folder / "kernel-metadata.json").is_file():
        raise ValueError(f"no kernel id given and {folder}/kernel-metadata.json does not exist (run kernel build)")
    return str(settings_from_metadata(folder)["id"])


# ---- handlers


@_guarded
def _upload_weights(args: argparse.Namespace) -> int:
    from arc_kit import upload

    folder: Path = args.folder
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    ref = args.ref
    upload.refuse_credentials(folder)  # before writing anything into it or contacting Kaggle
    if args.as_model:
        owner, slug = upload.check_ref(ref, "model")
        spec = upload.ModelSpec(owner=owner, model_slug=slug, framework=args.framework,
                                instance_slug=args.instance, title=args.title, description=args.description,
                                private=not args.public, **({"licence": args.licence} if args.licence else {}))
        written = upload.write_model_metadata(folder, spec)
        target = f"Kaggle model {spec.instance_ref}"
    else:
        dspec = upload.DatasetSpec(ref=ref, title=args.title, description=args.description,
                                   **({"licence": args.licence} if args.licence else {}))
        written = [upload.write_dataset_metadata(folder, dspec)]
        target = f"Kaggle dataset {ref} ({'public' if args.public else 'private'})"
    print("metadata written: " + ", ".join(str(p) for p in written))
    upload.print_plan(folder, target)
    if args.dry_run:
        print("dry run: nothing sent")
        return 0
    from arc_kit import kaggle_io

    if args.as_model:
        result = kaggle_io.publish_model(folder, spec.owner, spec.model_slug, spec.framework, spec.instance_slug,
                                         args.notes)
        print(f"model {result.action}: {result.ref}  (kernel model source: --weights-model {result.ref})")
    else:
        result = kaggle_io.publish_dataset(folder, ref, args.notes, public=args.public)
        print(f"dataset {result.action}: {result.ref} {result.url or ''}  (kernel: --weights-dataset {ref})")
    return 0


@_guarded
def _wheelhouse(args: argparse.Namespace) -> int:
    from arc_kit.wheelhouse import DEFAULT_PLATFORMS, WheelhouseConfig, build_wheelhouse

    config = WheelhouseConfig(python_version=args.python_version,
                              platforms=tuple(args.platforms or DEFAULT_PLATFORMS), with_deps=args.with_deps)
    if args.packages:
        config.packages = tuple(args.packages)
    result = build_wheelhouse(args.project, args.out, config, download=not args.no_download)
    print(f"wheelhouse {result.folder}: {len(result.wheels)} wheels (arc_kit: {result.arc_kit_wheel.name})")
    print(f"publish it: arc-kit upload-weights {result.folder} --id OWNER/arc-kit-wheels "
          f"--description 'Offline wheels for arc-kit kernels (Python {config.python_version})'")
    return 0


@_guarded
def _kernel_build(args: argparse.Namespace) -> int:
    from arc_kit.kernel_build import KernelSettings, build_kernel

    settings = KernelSettings(
        owner=_owner(args.owner), slug=args.slug, competition=args.competition,
        weights_dataset=args.weights_dataset, weights_model=args.weights_model,
        wheelhouse_dataset=args.wheelhouse_dataset, extra_datasets=list(args.dataset),
        budget_seconds=args.budget_seconds, margin_seconds=args.margin_seconds,
        task_cap_seconds=args.task_cap_seconds, views=args.views, quick_tasks=args.quick_tasks,
        kernel_type="notebook" if args.notebook else "script", machine_shape=args.machine_shape,
        docker_image_pinning_type=args.pinning)
    paths = build_kernel(args.main, args.out, settings)
    if not (settings.weights_dataset or settings.weights_model):
        print("warning: no weights attached (--weights-dataset or --weights-model)", file=sys.stderr)
    if not settings.wheelhouse_dataset:
        print("warning: no wheelhouse attached (--wheelhouse-dataset); the offline kernel cannot pip install",
              file=sys.stderr)
    print(f"kernel {settings.ref} built in {args.out}: {paths['code'].name}, {paths['metadata'].name}")
    return 0


@_guarded
def _kernel_push(args: argparse.Namespace) -> int:
    from arc_kit import kaggle_io

    result = kaggle_io.push_kernel(args.folder, args.timeout, args.accelerator)
    ref = _kernel_ref(None, args.folder)
    print(f"pushed {ref} version {result.version}: {result.url or ''}")
    print(f"follow it: arc-kit kernel status {ref};  then: arc-kit submit --kernel {ref} "
          f"--version {result.version}")
    return 0


@_guarded
def _kernel_status(args: argparse.Namespace) -> int:
    from arc_kit import kaggle_io

    ref = _kernel_ref(args.ref, args.folder)
    if args.once:
        status = kaggle_io.kernel_status(ref)
    else:
        def show(s: kaggle_io.KernelStatus, elapsed: float) -> None:
            print(f"[{elapsed:7.0f}s] {ref}: {s.state}", flush=True)

        status = kaggle_io.wait_for_kernel(ref, poll_seconds=args.poll, timeout_seconds=args.timeout, on_poll=show)
    print(f"{ref}: {status.state}" + (f" ({status.failure_message})" if status.failure_message else ""))
    return 1 if status.state == "ERROR" else 0


@_guarded
def _kernel_output(args: argparse.Namespace) -> int:
    from arc_kit import kaggle_io

    ref = _kernel_ref(args.ref, args.folder)
    files = kaggle_io.kernel_output(ref, args.out)
    print(f"{len(files)} files from {ref} in {args.out}:")
    for path in files:
        print(f"  {path}")
    return 0


@_guarded
def _submit(args: argparse.Namespace) -> int:
    from arc_kit import kaggle_io

    ref = _kernel_ref(args.ref, args.folder)
    message = kaggle_io.submit_kernel(args.competition, ref, args.version, args.message, args.file)
    print(f"{ref} v{args.version} -> {args.competition}: {message}")
    return 0


@_guarded
def _data_download(args: argparse.Namespace) -> int:
    from arc_kit import kaggle_io

    files = kaggle_io.download_competition(args.competition, args.out)
    print(f"{len(files)} files of {args.competition} in {args.out}")
    for path in files:
        print(f"  {path}")
    return 0
