"""How every setting is declared, checked and read, for training and runs alike.

A setting is a dataclass field made with ``setting()``: its one default, its help text and the bounds its value
must keep. ``validate`` checks any settings object (types of ``Literal`` choices, bounds, nested tables, then each
class's own cross-field rules); ``load`` reads a TOML file with ``section.field=value`` overrides into a settings
class, naming the file, table and field of anything wrong. The command-line flags are generated from the same
fields (``arc_kit.cli.flags``), so a default, a bound or a help text is written once.
"""

from __future__ import annotations

import dataclasses
import json
import operator
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from arc_kit.errors import ArcKitError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

T = TypeVar("T")


class SettingsError(ArcKitError, ValueError):
    """A setting cannot work (in a file, a flag or code); the message names the file, table and field."""


BOUNDS: dict[str, tuple[str, Callable[[Any, Any], bool]]] = {
    "ge": (">=", operator.ge), "gt": (">", operator.gt), "le": ("<=", operator.le), "lt": ("<", operator.lt)}


def setting(default: Any = dataclasses.MISSING, *, help: str, factory: Callable[[], Any] | None = None,
            ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None,
            meaning: str = "", flag: bool = True, task_file: Literal["challenges", "solutions", None] = None) -> Any:
    """A settings field: its default (or ``factory`` for a list or table), help text, and bounds.

    ``meaning`` explains a special value in the bound's error message, e.g. ``"0: automatic"``; ``flag=False``
    keeps the field off the command line (a command fills it another way); ``task_file`` marks a path that may
    also be a named data set, its challenges or its solutions file (the flag resolves it while parsing).
    """
    bounds = {k: v for k, v in {"ge": ge, "gt": gt, "le": le, "lt": lt}.items() if v is not None}
    metadata = {"help": help, "bounds": bounds, "meaning": meaning, "flag": flag, "task_file": task_file}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class Settings:
    """The base of every settings dataclass: ``check()`` validates it (choices, bounds, its cross-field rules)."""

    def check(self: T) -> T:
        validate(self)
        return self


def field_path(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def validate(obj: Any, where: str = "") -> None:
    """Check ``obj`` and every table in it: ``Literal`` choices, bounds, then the class's own ``cross_check(where)``
    (cross-field checks), deepest tables first. Raises ``SettingsError`` naming the field's full path."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, name = getattr(obj, f.name), field_path(where, f.name)
        if dataclasses.is_dataclass(value):
            validate(value, name)
            continue
        if isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            for i, item in enumerate(value):
                validate(item, f"{name}[{i}]")
            continue
        _check_choice(value, hints[f.name], name)
        check_bounds(f, value, name)
    cross_check = getattr(obj, "cross_check", None)
    if cross_check is not None:
        cross_check(where)


def check_bounds(f: dataclasses.Field, value: Any, name: str) -> None:
    """``SettingsError`` when ``value`` breaks a bound of setting ``f`` (None, an unset optional, keeps them
    all); ``name`` is how the message calls it (``solver.views``)."""
    if value is None:
        return
    for key, bound in f.metadata.get("bounds", {}).items():
        symbol, holds = BOUNDS[key]
        if not holds(value, bound):
            meaning = f.metadata.get("meaning")
            raise SettingsError(f"{name} must be {symbol} {bound}{f' ({meaning})' if meaning else ''}, "
                                f"got {value!r}")


def _literal_choices(hint: Any) -> tuple[Any, ...] | None:
    """The choices of ``Literal[...]`` or ``Literal[...] | None`` (None included), else None."""
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    args = typing.get_args(hint)
    literal = [a for a in args if typing.get_origin(a) is Literal]
    if literal and type(None) in args:
        return (*typing.get_args(literal[0]), None)
    return None


def choices_of(cls: type, name: str) -> tuple[Any, ...]:
    """The allowed values of a ``Literal`` field (e.g. ``choices_of(SolverSettings, "formula")``)."""
    return tuple(c for c in _literal_choices(typing.get_type_hints(cls)[name]) or () if c is not None)


def _check_choice(value: Any, hint: Any, where: str) -> None:
    choices = _literal_choices(hint)
    if choices is not None and value not in choices:
        names = ", ".join(str(c) for c in choices if c is not None)
        raise SettingsError(f"{where} must be one of {names}, got {value!r}")


# ---------------------------------------------------------------------------------------------------------------
# Reading values from TOML tables, flags or a kernel's settings literal


def fill(cls: type[T], raw: Any, where: str) -> T:
    """Build dataclass ``cls`` from a table, type-checking each value and naming any unknown field, or any field the
    class lists in ``RETIRED`` with why it is gone (``validate`` is the caller's next step)."""
    if not isinstance(raw, dict):
        raise SettingsError(f"{where or 'the settings'}: must be a table, got {raw!r}")
    hints = _field_hints(cls)
    why_retired: dict[str, str] = getattr(cls, "RETIRED", {})  # settings an older config may hold, each with why
    retired = sorted(set(raw) & set(why_retired))
    if retired:
        raise SettingsError(f"{field_path(where, retired[0])}: {why_retired[retired[0]]}")
    unknown = sorted(set(raw) - set(hints))
    if unknown:
        raise SettingsError(f"{where + ': ' if where else ''}unknown {_kind(hints)}(s) {', '.join(unknown)}; "
                            f"known: {', '.join(hints)}")
    return cls(**{name: _typed(value, hints[name], field_path(where, name)) for name, value in raw.items()})


def _field_hints(cls: type) -> dict[str, Any]:
    """{name: type} of the fields of dataclass ``cls`` a settings file or ``--set`` may name."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _kind(hints: dict[str, Any]) -> str:
    """What the names at one level are, for a message: tables (a config's top level) or settings."""
    return "table" if hints and all(dataclasses.is_dataclass(h) for h in hints.values()) else "setting"


def _typed(value: Any, hint: Any, where: str) -> Any:
    """``value`` as type ``hint`` wants it (an int where a float is due becomes a float), or ``SettingsError``."""
    if dataclasses.is_dataclass(hint):
        return fill(hint, value, where)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if _literal_choices(hint) is not None:
        _check_choice(value, hint, where)
        return value
    if origin is list:
        if not isinstance(value, list):
            raise SettingsError(f"{where}: expected a list, got {value!r}")
        return [_typed(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if args and type(None) in args:  # X | None
        return None if value is None else _typed(value, next(a for a in args if a is not type(None)), where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is Path and isinstance(value, str):
        return Path(value)
    if (hint is bool) != isinstance(value, bool) or (isinstance(hint, type) and not isinstance(value, hint)):
        raise SettingsError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.learning_rate=2e-4`` -> (["train", "learning_rate"], 2e-4); values are read as TOML when they
    parse (numbers, booleans, ``[...]`` lists, quoted strings), else taken as a plain string; a plain string with
    commas becomes a list (``data.challenges=a.json,b.json``)."""
    if "=" not in text:
        raise SettingsError(f"--set {text!r}: expected section.field=value")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if len(path) < 2:
        raise SettingsError(f"--set {text!r}: the key needs a table, e.g. solver.{key.strip()}")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = [p.strip() for p in raw.split(",")] if "," in raw else raw
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: list[str], cls: type) -> dict[str, Any]:
    """``raw`` with each ``section.field=value`` put in; a single value given for a list field becomes a
    one-item list. Each override is checked against ``cls`` as it is read, so a misspelt table or field, or a
    value of the wrong type, is refused in a message that quotes the ``--set`` it came from."""
    for text in overrides:
        path, value = parse_override(text)
        table, table_cls, hints, where = raw, cls, _field_hints(cls), ""
        for part in path[:-1]:
            _known(hints, part, where, text)
            if not dataclasses.is_dataclass(hints[part]):
                raise SettingsError(f"--set {text!r}: {field_path(where, part)} is a setting, not a table")
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise SettingsError(f"--set {text!r}: {field_path(where, part)} is not a table in the settings "
                                    "file")
            table_cls, where = hints[part], field_path(where, part)
            hints = _field_hints(table_cls)
        name = path[-1]
        why_retired: dict[str, str] = getattr(table_cls, "RETIRED", {})
        if name in why_retired:
            raise SettingsError(f"--set {text!r}: {field_path(where, name)}: {why_retired[name]}")
        _known(hints, name, where, text)
        if typing.get_origin(hints[name]) is list and not isinstance(value, list):
            value = [value]
        try:
            _typed(value, hints[name], field_path(where, name))
        except SettingsError as e:
            raise SettingsError(f"--set {text!r}: {e}") from None
        table[name] = value
    return raw


def _known(hints: dict[str, Any], name: str, where: str, text: str) -> None:
    """Refuse ``--set text`` when ``name`` is no table or field at ``where``, listing the ones there are."""
    if name not in hints:
        place = f" in {where}" if where else ""
        raise SettingsError(f"--set {text!r}: unknown {_kind(hints)} {name}{place}; known: "
                            f"{', '.join(hints)}")


def read_settings_file(path: Path) -> dict[str, Any]:
    """A settings file's tables: TOML, or JSON for a ``.json`` file (what a kernel writes from the settings literal
    it carries; the same tables, and Python's standard library writes no TOML)."""
    json_file = Path(path).suffix == ".json"
    try:
        text = Path(path).read_text(encoding="utf-8")
        return json.loads(text) if json_file else tomllib.loads(text)
    except FileNotFoundError:
        raise SettingsError(f"{path}: settings file not found") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise SettingsError(f"{path}: not valid {'JSON' if json_file else 'TOML'} ({e})") from None
    except (OSError, UnicodeDecodeError) as e:  # a folder, no permission, not text
        raise SettingsError(f"{path}: cannot read the settings file ({getattr(e, 'strerror', None) or e})") from None


def load(cls: type[T], path: Path | None = None, overrides: list[str] | None = None) -> T:
    """``cls`` from a TOML file (or its defaults when None) with ``--set`` overrides, typed and validated; any
    error names the file."""
    raw = read_settings_file(path) if path is not None else {}
    try:
        fill(cls, raw, "")  # the file alone first: an unknown name or a wrong type in it names the file
    except SettingsError as e:
        raise SettingsError(f"{path}: {e}") from None
    raw = apply_overrides(raw, overrides or [], cls)  # each refusal quotes its --set
    try:
        settings = fill(cls, raw, "")
        validate(settings)
    except SettingsError as e:  # a bound or a rule between fields, over the file and the --set values
        source = " + ".join([str(path)] * (path is not None) + ["--set"] * bool(overrides))
        raise SettingsError(f"{source}: {e}" if source else str(e)) from None
    return settings


def from_dict(cls: type[T], values: Any, where: str) -> T:
    """``cls`` from a plain dict (a kernel's settings literal), typed and validated."""
    try:
        settings = fill(cls, values, "")
        validate(settings)
    except SettingsError as e:
        raise SettingsError(f"{where}: {e}") from None
    return settings
