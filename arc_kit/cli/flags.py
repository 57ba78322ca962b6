"""Command-line flags generated from the settings dataclasses, so a flag and its default cannot drift apart.

``transformers.HfArgumentParser`` turns each settings field into a flag with the field's type, help and choices;
tables inside a table become prefixed flags (``TTTSettings.lora.r`` is ``--ttt-lora-r``). Every flag is spelt with
hyphens (``--batch-size``, ``--no-colour-views``), the CLI convention, and abbreviations are off in every parser:
a prefix of one flag must never silently mean another.

Which flags were given is tracked (their parser defaults are ``SUPPRESS``, so an absent flag leaves no
attribute): the defaults come only from the dataclasses, ``--settings FILE`` and ``--set table.field=value`` come
next, and a flag given on the command line always wins, even when its value is the dataclass default.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from transformers import HfArgumentParser

from arc_kit.config.run import SubmissionConfig, TTTSettings
from arc_kit.config.schema import SettingsError, check_bounds, load, parse_override, validate
from arc_kit.errors import ArcKitError

T = TypeVar("T")

# Tables whose field names would clash with another table's (seed, batch_size, max_length) take a prefix on the
# command line: TTTSettings.learning_rate is --ttt-learning-rate.
FLAG_PREFIX: dict[type, str] = {TTTSettings: "ttt_"}
SETTINGS_CLASSES = "_settings_classes"  # the namespace attribute naming the dataclasses a command has flags for
SET_SCHEMAS = "_set_schemas"  # the namespace attribute naming the settings classes --set may name tables of
SUBMISSION_TABLES: dict[type, str] = {hint: name for name, hint in typing.get_type_hints(SubmissionConfig).items()}


class Parser(argparse.ArgumentParser):
    """The kit's argument parser: no abbreviations, and an error is one line (``error: arc-kit dry-run: <message>``,
    exit 2), like every other bad input, not argparse's usage block, which for a command with every settings flag
    runs to fifty lines and buries the message. Sub-command parsers are of this class too (argparse makes them of
    the parent's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {' '.join(message.split())} (see {self.prog} --help)\n")


def _flat_fields(cls: type, prefix: str = "", path: tuple[str, ...] = ()) -> Iterator[tuple[str, tuple[str, ...],
                                                                                            dataclasses.Field, Any]]:
    """(flag name, path in ``cls``, field, type) of every leaf setting; a nested table's fields take its name as a
    prefix."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init or not f.metadata.get("flag", True):
            continue
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _flat_fields(hints[f.name], f"{prefix}{f.name}_", (*path, f.name))
        else:
            yield prefix + f.name, (*path, f.name), f, hints[f.name]


def _flag_class(cls: type, seen: dict[str, tuple] | None = None) -> type:
    """A flat dataclass holding one field per flag of ``cls`` (its prefix included), with the field's default and
    help only: what ``HfArgumentParser`` reads. A flag already in ``seen`` (another class on the same parser has a
    setting of that name, e.g. every kernel kind's ``wheelhouse_dataset``) is left out: one flag fills both, which
    must then be the same setting (type, default, help, bounds), else a ``TypeError`` names it."""
    specs = []
    seen = {} if seen is None else seen
    for name, _path, f, hint in _flat_fields(cls, FLAG_PREFIX.get(cls, "")):
        value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        same = (hint, value, f.metadata.get("help"), f.metadata.get("bounds"))
        if name in seen:
            if seen[name] != same:
                raise TypeError(f"--{name.replace('_', '-')} would fill two different settings ({cls.__name__}'s "
                                "and another class's): give one of them another name or a FLAG_PREFIX")
            continue
        seen[name] = same
        shown = " ".join(map(str, value)) if isinstance(value, list) else "unset" if value is None else value
        text = (f.metadata.get("help") or "").replace("%", "%%")
        metadata = {"help": f"{text} (default: {shown})"}
        default = (dataclasses.field(default_factory=f.default_factory, metadata=metadata)
                   if f.default_factory is not dataclasses.MISSING else dataclasses.field(default=f.default,
                                                                                          metadata=metadata))
        parse = {"challenges": challenges_file, "solutions": solutions_file}.get(f.metadata.get("task_file"))
        specs.append((name, parse or hint, default))  # HfArgumentParser takes a callable type as argparse's type=
    return dataclasses.make_dataclass(f"{cls.__name__}Flags", specs)


def _hyphens_only(names: tuple[str, ...]) -> tuple[str, ...]:
    """Drop ``--some_flag`` where ``--some-flag`` is also offered (HfArgumentParser offers both)."""
    return tuple(n for n in names if not (n.startswith("--") and "_" in n and n.replace("_", "-") in names))


class HyphenParser(HfArgumentParser):
    """``HfArgumentParser`` offering each flag with hyphens only (``--batch-size``, not also ``--batch_size``)."""

    def add_argument(self, *names: str, **kwargs: Any) -> argparse.Action:
        return super().add_argument(*_hyphens_only(names), **kwargs)


def settings_parent(*classes: type) -> argparse.ArgumentParser:
    """A parent parser holding the flags of ``classes`` (pass it as ``parents=[...]`` to ``add_parser``); the
    namespace it fills holds only the flags given, plus which classes the command has flags for."""
    seen: dict[str, tuple] = {}
    parser = HyphenParser([_flag_class(cls, seen) for cls in classes], add_help=False)
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    parser.set_defaults(**{SETTINGS_CLASSES: classes})
    return parser


def flag_names(cls: type) -> set[str]:
    """The flags (their argparse names: ``ttt_learning_rate``) of every setting of ``cls``."""
    return {name for name, *_ in _flat_fields(cls, FLAG_PREFIX.get(cls, ""))}


def given_flags(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` given on the command line, as a nested dict by table and field name."""
    given: dict[str, Any] = {}
    for name, path, _f, _hint in _flat_fields(cls, FLAG_PREFIX.get(cls, "")):
        if hasattr(args, name):
            table = given
            for part in path[:-1]:
                table = table.setdefault(part, {})
            table[path[-1]] = getattr(args, name)
    return given


def _replace(obj: T, values: dict[str, Any]) -> T:
    """``obj`` with ``values`` put in, nested dicts into nested tables."""
    changes = {k: _replace(getattr(obj, k), v) if isinstance(v, dict) else v for k, v in values.items()}
    return dataclasses.replace(obj, **changes)


def settings_from_args(args: argparse.Namespace, cls: type[T], base: T | None = None) -> T:
    """``base`` (default: the dataclass defaults) with every flag given on the command line put over it, checked."""
    settings = _replace(base if base is not None else cls(), given_flags(args, cls))
    validate(settings, SUBMISSION_TABLES.get(cls, ""))
    return settings


def config_tables(config_class: type) -> dict[type, str]:
    """{settings class: its table's name} of a config class (``SubmissionConfig``: ``RunSettings`` -> ``run``, ...)."""
    return {hint: name for name, hint in typing.get_type_hints(config_class).items() if dataclasses.is_dataclass(hint)}


def config_from_args(args: argparse.Namespace, config_class: type[T] = SubmissionConfig, path: Path | None = None,
                     overrides: list[str] | None = None) -> T:
    """The settings a command runs with: the defaults, then ``--settings FILE`` (or ``path``) and ``--set
    table.field=value`` (or ``overrides``), then the flags given; checked, so a nonsense value is one line naming
    its field. ``config_class``: ``SubmissionConfig``, or another kind's config (``arc_kit.config.kernels``)."""
    path = path if path is not None else getattr(args, "settings", None)
    overrides = overrides if overrides is not None else set_overrides(args, config_class)
    config = load(config_class, path, overrides)
    flagged = getattr(args, SETTINGS_CLASSES, ())
    config = _replace(config, {table: given_flags(args, cls) for cls, table in config_tables(config_class).items()
                               if cls in flagged})
    validate(config)
    return config


def set_overrides(args: argparse.Namespace, schema: type) -> list[str]:
    """The ``--set`` values for ``schema``'s tables. A command whose ``--set`` fills one settings class gives
    it every value (its loader refuses a table it lacks); one that fills several (the demo: the submission
    config and the training config) sends each value to the class holding its table, and refuses a table none of
    them holds."""
    schemas = getattr(args, SET_SCHEMAS, None) or (schema,)
    texts = getattr(args, "set", None) or []
    if len(schemas) == 1:
        return list(texts) if schemas[0] is schema else []
    tables = {cls: set(typing.get_type_hints(cls)) for cls in schemas}
    mine = []
    for text in texts:
        table = parse_override(text)[0][0]
        owner = next((cls for cls in schemas if table in tables[cls]), None)
        if owner is None:
            known = "; ".join(f"{', '.join(tables[cls])} ({cls.__name__})" for cls in schemas)
            raise SettingsError(f"--set {text!r}: unknown table {table}; known: {known}")
        if owner is schema:
            mine.append(text)
    return mine


def add_settings_file(parser: argparse.ArgumentParser, *schemas: type) -> None:
    """``--settings FILE`` (a ``SubmissionConfig`` TOML) and ``--set`` for the tables of ``schemas``."""
    parser.add_argument("--settings", type=Path, default=None, metavar="TOML",
                        help="a settings file with [kernel], [run], [solver] and [ttt] tables; flags given "
                             "override it")
    add_set_flag(parser, *schemas, help="set one setting, e.g. --set solver.views=4 (repeatable; after "
                                        "--settings, before flags)")


def add_set_flag(parser: argparse.ArgumentParser, *schemas: type, help: str) -> None:
    """``--set TABLE.FIELD=VALUE``, for the tables of the settings classes ``schemas`` (the command's
    namespace names them, so its handler and the tests know which tables a value may name)."""
    parser.add_argument("--set", action="append", default=[], metavar="TABLE.FIELD=VALUE", help=help)
    parser.set_defaults(**{SET_SCHEMAS: schemas})


def setting_value(cls: type, name: str) -> Callable[[str], Any]:
    """argparse ``type=`` for a flag that takes setting ``name`` of ``cls`` outside a config (``arc-kit prompt
    --max-length``): the value read as the setting's type and held to its bounds, so the flag refuses what the
    setting refuses, in argparse's one line."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    kind = typing.get_type_hints(cls)[name]

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        try:
            check_bounds(field, value, "")
        except SettingsError as e:
            raise argparse.ArgumentTypeError(str(e).strip()) from None
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its own messages
    return parse


def challenges_file(value: str) -> Path:
    """argparse ``type=`` for a challenges argument: an existing path, or a named data set's challenges file."""
    return _task_file(value, solutions=False)


def solutions_file(value: str) -> Path:
    """argparse ``type=`` for a solutions argument: an existing path, or a named data set's solutions file."""
    return _task_file(value, solutions=True)


def _task_file(value: str, solutions: bool) -> Path:
    """Resolved while the command line is parsed, so a bad name stops the command before anything loads."""
    from arc_kit.core.named_data import resolve_task_path

    try:
        return resolve_task_path(value, solutions=solutions)
    except ArcKitError as exc:  # argparse shows an ArgumentTypeError's message as it is
        raise argparse.ArgumentTypeError(describe(exc)) from None


Handler = Callable[[argparse.Namespace], int]


def input_errors(handler: Handler) -> Handler:
    """Bad input ends in ``error: <message>`` and exit 2, not a traceback: the kit's own errors (``ArcKitError``:
    a bad file, setting, folder) and an ``OSError`` naming a file. Anything else is a bug and keeps its
    traceback."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ArcKitError as exc:
            print(f"error: {describe(exc)}", file=sys.stderr)
            return 2
        except OSError as exc:
            if exc.filename is None:
                raise
            print(f"error: {describe(exc)}", file=sys.stderr)
            return 2

    return run


def describe(exc: BaseException) -> str:
    """One line; an OSError names its file (``str()`` would say "[Errno 2] No such file ...: 'x'")."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return " ".join(str(exc).split()) or type(exc).__name__
