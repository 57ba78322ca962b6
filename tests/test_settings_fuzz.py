"""The settings surface, fuzzed from the schema: every ``--set TABLE.FIELD=VALUE`` with a misspelt table, a
misspelt field or a value of the wrong type, for every command whose parser takes ``--set``, is refused in one line
(exit 2, one ``error:`` line naming what is wrong, no traceback) before the command makes anything.

The cases are generated, not listed: the commands are found by walking the real ``arc-kit`` parser, the tables and
fields by walking the settings dataclasses each command declares for its ``--set`` (``SET_SCHEMAS``), so a new
command, table or field is fuzzed the day it is added.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

import pytest

from arc_kit.cli import main as cli
from arc_kit.cli.flags import SET_SCHEMAS

PARSER = cli.build_parser()


def commands_with_set(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict:
    """{command words: its parser} for every sub-command below ``parser`` that takes ``--set``."""
    found = {}
    for action in parser._actions:
        if "--set" in action.option_strings:
            found[path] = parser
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(commands_with_set(sub, (*path, name)))
    return found


COMMANDS = commands_with_set(PARSER)


def leaves(cls: type, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(dotted path, type) of every setting below the tables of ``cls``; a nested table is walked into."""
    out = []
    for name, hint in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(hint):
            out += leaves(hint, (*path, name))
        elif path:  # a top-level field of a config is a table; --set needs TABLE.FIELD
            out.append(((*path, name), hint))
    return out


def tables(cls: type, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every table (and table in a table) of ``cls``, as a path."""
    out = []
    for name, hint in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(hint):
            out += [(*path, name), *tables(hint, (*path, name))]
    return out


def misspelt(name: str, taken: set[str]) -> str:
    """A typo of ``name`` that is no other name at that level: a letter dropped, else one added."""
    for typo in (name[:-1], name[1:], name + "x", name + "xx"):
        if typo and typo not in taken and typo != name:
            return typo
    raise AssertionError(name)


def wrong_value(hint: Any) -> str:
    """A value, as typed after ``=``, that the setting's type refuses."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Literal or (args and typing.get_origin(args[0]) is typing.Literal):
        return "no-such-choice"
    if typing.get_origin(hint) is not list and args and typing.get_origin(hint) is not typing.Literal:
        hint = args[0]  # X | None
    if typing.get_origin(hint) is list:
        item = typing.get_args(hint)[0]
        return "[1, 2]" if item is str else "not-a-number" if item in (int, float) else "not-a-table"
    if hint in (int, float, bool):
        return "not-a-number" if hint is not bool else "maybe"
    return "[1, 2]"  # str, Path: a list is none of them


def names_at(cls: type, path: tuple[str, ...]) -> set[str]:
    for part in path:
        cls = typing.get_type_hints(cls)[part]
    return set(typing.get_type_hints(cls))


def cases() -> list[tuple[str, tuple[str, ...], str, str]]:
    """(kind, command, --set text, a word the refusal must name) for every command, table and setting: kind is
    table (a misspelt table), field (a misspelt field) or type (a value of the wrong type)."""
    out = []
    for command, parser in COMMANDS.items():
        schemas = parser.get_default(SET_SCHEMAS)
        assert schemas, f"arc-kit {' '.join(command)} takes --set but declares no settings class for it"
        every_table = {name for schema in schemas for name in typing.get_type_hints(schema)}
        for schema in schemas:
            settings = leaves(schema)
            for table in tables(schema):
                field, hint = next((p, h) for p, h in settings if p[:len(table)] == table)
                taken = every_table if len(table) == 1 else names_at(schema, table[:-1])
                typo = misspelt(table[-1], taken)
                text = ".".join((*table[:-1], typo, *field[len(table):]))
                out.append(("table", command, f"{text}={_good_value(schema, field)}", typo))
            for field, hint in settings:
                typo = misspelt(field[-1], names_at(schema, field[:-1]))
                out.append(("field", command, f"{'.'.join((*field[:-1], typo))}={_good_value(schema, field)}", typo))
                out.append(("type", command, f"{'.'.join(field)}={wrong_value(hint)}", ".".join(field)))
    return out


def _good_value(schema: type, field: tuple[str, ...]) -> str:
    """The field's default as a --set value (so a refusal can only be about the misspelt name)."""
    obj = schema()
    for part in field:
        obj = getattr(obj, part)
    if isinstance(obj, bool):
        return str(obj).lower()
    if isinstance(obj, (int, float)):
        return repr(obj)
    if isinstance(obj, list):
        return json.dumps([str(x) if isinstance(x, Path) else x for x in obj]) if obj else "[]"
    return json.dumps(str(obj)) if obj is not None else '"x"'


CASES = cases()


def required_arguments(parser: argparse.ArgumentParser, files: dict[str, str]) -> list[str]:
    """The command's required options and positionals, filled from ``files`` by their dest."""
    argv: list[str] = []
    for action in parser._actions:
        if action.option_strings and not action.required:
            continue
        if isinstance(action, argparse._SubParsersAction) or action.dest in ("help", argparse.SUPPRESS):
            continue
        assert action.dest in files, f"no test value for the required argument {action.dest!r}: add it to files"
        value = files[action.dest]
        argv += [action.option_strings[0], value] if action.option_strings else [value]
    return argv


def test_the_fuzz_covers_every_command_that_takes_set():
    commands = {" ".join(c) for c in COMMANDS}
    assert {"dry-run", "kernel build", "demo", "train"} <= commands, commands
    for command in COMMANDS:  # a misspelt table, field and a wrong value for each of its settings
        assert {k for k, c, _, _ in CASES if c == command} == {"table", "field", "type"}, command


@pytest.mark.parametrize("kind", ["table", "field", "type"])
def test_every_misspelt_or_mistyped_set_is_refused_in_one_line(kind, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setattr(cli, "build_parser", lambda: PARSER)  # one parser for every case: they only parse
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "c.json").write_text(json.dumps({"t": {"train": [{"input": [[1]], "output": [[2]]}],
                                                     "test": [{"input": [[3]]}]}}))
    files = {"model": str(inputs / "model"), "challenges": str(inputs / "c.json"), "out": "out",
             "config": "tiny-cpu"}
    checked = 0
    for case_kind, command, text, named in CASES:
        if case_kind != kind:
            continue
        argv = [*command, *required_arguments(COMMANDS[command], files)]
        if any(a.option_strings == ["--out"] for a in COMMANDS[command]._actions) and "--out" not in argv:
            argv += ["--out", "out"]
        code = cli.main([*argv, "--set", text])
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        where = f"arc-kit {' '.join(argv)} --set {text}"
        assert code == 2, f"{where}: exit {code}\n{err}"
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, f"{where}:\n{err}"
        assert named in lines[0], f"{where}: the message does not name {named!r}: {lines[0]}"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"], f"{where}: made {list(tmp_path.iterdir())}"
        checked += 1
    assert checked == sum(k == kind for k, _, _, _ in CASES) > 0



@pytest.mark.parametrize(("text", "says"), [
    ("[solvr]\nviews = 4\n", "s.toml: unknown table(s) solvr; known: kernel, run, solver, ttt"),
    ("[solver]\nviewz = 4\n", "s.toml: solver: unknown setting(s) viewz; known: mode, views"),
    ("[solver]\nviews = 'four'\n", "s.toml: solver.views: expected int, got 'four'"),
])
def test_a_settings_file_with_a_misspelt_name_or_a_wrong_type_is_named_in_one_line(tmp_path, text, says):
    from arc_kit.config.run import SettingsError, load_submission_config

    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(SettingsError) as refused:
        load_submission_config(tmp_path / "s.toml", ["solver.views=2"])  # an override does not hide the file's mistake
    assert says in str(refused.value) and ": :" not in str(refused.value)
    assert str(refused.value).startswith(str(tmp_path / "s.toml"))


def test_a_set_value_that_breaks_a_bound_names_the_field_and_where_it_came_from(tmp_path):
    from arc_kit.config.run import SettingsError, load_submission_config

    (tmp_path / "s.toml").write_text("[solver]\nviews = 4\n")
    with pytest.raises(SettingsError, match=r"s\.toml \+ --set: solver\.views must be >= 1, got 0"):
        load_submission_config(tmp_path / "s.toml", ["solver.views=0"])
    assert load_submission_config(tmp_path / "s.toml", ["solver.views=2", "ttt.lora.r=8"]).solver.views == 2


def test_the_demo_sends_each_set_to_the_settings_holding_its_table(monkeypatch, tmp_path):
    import arc_kit.demo

    seen = {}

    def fake_run_demo(demo, config):  # noqa: ANN001, ANN202
        seen.update(overrides=demo.overrides, views=config.solver.views)
        return {"summary": {"score before (held-out)": 0.0, "score after (held-out)": 1.0}}

    monkeypatch.setattr(arc_kit.demo, "run_demo", fake_run_demo)
    assert cli.main(["demo", "--out", str(tmp_path / "d"), "--set", "solver.views=3", "--set",
                     "train.max_steps=2"]) == 0
    assert seen == {"overrides": ["train.max_steps=2"], "views": 3}
