"""Command-line flags generated from the settings dataclasses, so a flag and its default cannot drift apart.

``transformers.HfArgumentParser`` turns each dataclass field into ``--field_name`` (and ``--field-name``) with the
field's type, default and help; a sub-command takes those flags through argparse's ``parents``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar, get_type_hints

from arc_kit.settings import KernelPlan, TTTConfig, build, fields_of, load_plan

T = TypeVar("T")


# Groups whose field names would clash with another group's (seed, batch_size, max_length) take a prefix on the
# command line: TTTConfig.learning_rate is --ttt_learning_rate.
FLAG_PREFIX: dict[type, str] = {TTTConfig: "ttt_"}


def settings_parent(*classes: type) -> argparse.ArgumentParser:
    """A parent parser holding the flags of ``classes`` (pass it as ``parents=[...]`` to ``add_parser``)."""
    from transformers import HfArgumentParser

    return HfArgumentParser([_prefixed(cls) for cls in classes], add_help=False)


def _prefixed(cls: type) -> type:
    """``cls`` itself, or a copy whose fields carry ``FLAG_PREFIX[cls]`` (same types, defaults and help)."""
    prefix = FLAG_PREFIX.get(cls)
    if not prefix:
        return cls
    hints = get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        default = (dataclasses.field(default_factory=f.default_factory, metadata=f.metadata)
                   if f.default_factory is not dataclasses.MISSING else dataclasses.field(default=f.default,
                                                                                          metadata=f.metadata))
        specs.append((prefix + f.name, hints[f.name], default))
    return dataclasses.make_dataclass(f"{prefix}{cls.__name__}", specs)


def settings_from_args(args: argparse.Namespace, cls: type[T], base: T | None = None) -> T:
    """The ``cls`` instance the parsed flags describe (checking its values is the caller's next step).

    With ``base`` (from a settings TOML), a flag changes a field only when it was given a value other than the
    dataclass default, so the file's values stand unless the command line says otherwise.
    """
    prefix = FLAG_PREFIX.get(cls, "")
    given = {f.name: getattr(args, prefix + f.name) for f in dataclasses.fields(cls)}
    if base is None:
        return build(cls, given)
    defaults = fields_of(cls(), cls)
    return build(cls, {**fields_of(base, cls), **{k: v for k, v in given.items() if v != defaults[k]}})


def plan_from_args(args: argparse.Namespace) -> KernelPlan:
    """The settings a command runs with: ``--settings FILE`` (``[kernel]``, ``[run]``, ``[solver]`` tables), then
    the flags on top; checked, so a nonsense value is one line naming its field."""
    base = load_plan(args.settings) if getattr(args, "settings", None) else KernelPlan()
    plan = KernelPlan(*(settings_from_args(args, type(group), group) if _has_flags(args, type(group)) else group
                        for group in (base.kernel, base.run, base.solver, base.ttt)))
    plan.check()
    return plan


def _has_flags(args: argparse.Namespace, cls: type) -> bool:
    prefix = FLAG_PREFIX.get(cls, "")
    return all(hasattr(args, prefix + f.name) for f in dataclasses.fields(cls))


def add_settings_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", type=Path, default=None, metavar="TOML",
                        help="a settings file with [kernel], [run] and [solver] tables; flags given override it")


class Parser(argparse.ArgumentParser):
    """argparse with the kit's one-line errors (``error: arc-kit dry-run: <message>``, exit 2): argparse's own
    prints the usage block first, 45 lines for ``dry-run`` (every settings flag), which buries the message."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {' '.join(message.split())}\n")


def challenges_file(value: str) -> Path:
    """argparse ``type=`` for a challenges argument: an existing path, or a named data set's challenges file."""
    return _task_file(value, solutions=False)


def solutions_file(value: str) -> Path:
    """argparse ``type=`` for a solutions argument: an existing path, or a named data set's solutions file."""
    return _task_file(value, solutions=True)


def _task_file(value: str, solutions: bool) -> Path:
    """Resolved while the command line is parsed, so a bad name stops the command before anything loads."""
    from arc_kit.named_data import resolve_task_path

    try:
        return resolve_task_path(value, solutions=solutions)
    except (OSError, ValueError) as exc:  # argparse shows an ArgumentTypeError's message as it is
        raise argparse.ArgumentTypeError(describe(exc)) from None


Handler = Callable[[argparse.Namespace], int]


def input_errors(handler: Handler) -> Handler:
    """Bad input (a missing, unreadable or malformed file, a bad setting) ends in ``error: <message>`` and exit 2,
    not a traceback. The kit's input errors are ValueErrors (TaskFileError, SettingsError, ConfigError, ...) and
    their messages name the file or field; an OSError is named by its file."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (OSError, ValueError) as exc:
            print(f"error: {describe(exc)}", file=sys.stderr)
            return 2

    return run


def describe(exc: BaseException) -> str:
    """One line; an OSError names its file (``str()`` would say "[Errno 2] No such file ...: 'x'")."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start})"
    return " ".join(str(exc).split()) or type(exc).__name__
