"""The README and docs/ cannot drift from the code: every command they show is read by the parser that runs it.

- Fenced shell blocks: each ``arc-kit ...`` command is parsed by ``arc_kit.cli.main.build_parser()`` (parse only:
  no handler runs); each ``scripts/X.py ...`` by the script's own parser (the script runs until it parses its
  arguments, and stops there). Values are checked as the parser checks them (types, choices), except that a
  placeholder (``OWNER/SLUG``, ``DIR``, ``N``, ``<you>``, ``...``) stands for any value. On top: a data set name must
  be a real one, ``--config NAME`` a built-in config, ``--set TABLE.FIELD=VALUE`` a real setting of the command,
  and a path into the repository (``arc_kit/configs/nvarc.toml``) an existing file.
- Inline ``arc-kit ...`` spans are often fragments (``arc-kit kernel output --kind evaluate``): their subcommand and
  every flag they name must exist. Inline ``scripts/X.py --flag`` spans the same.
- Fenced TOML blocks load into a settings schema a command reads (the training config, a kernel's settings file).
- Every relative link resolves to a file in the repository (and to a heading, given ``#anchor``); every repository
  path in inline code (``arc_kit/solve/dfs.py``, ``tests/test_dfs.py``) exists.
- The README's two commands stay as they are, and install exactly what ``.ci/run`` installs.

Each check has a negative case below, so a test that cannot fail would show.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import importlib
import io
import os
import re
import runpy
import shlex
import sys
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import tomllib

from arc_kit.cli.flags import SET_SCHEMAS, challenges_file, set_overrides, solutions_file
from arc_kit.cli.main import build_parser
from arc_kit.config.schema import SettingsError, apply_overrides, fill
from arc_kit.config.training import resolve_config_path
from arc_kit.core.named_data import NAMED_SETS

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "kernels" / "README.md",
        REPO / "submission" / "README.md"]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console", ""}
REPO_FOLDERS = ("arc_kit/", "scripts/", "tests/", "docs/", "submission/", ".ci/")

DEMO_COMMAND = ("python -m pip install torch==2.13.0 && python -m pip install -e . -c constraints.txt && "
                "arc-kit demo --out demo-out")
TEST_COMMAND = ('python -m pip install torch==2.13.0 && python -m pip install -e ".[test]" -c constraints.txt && '
                "python -m pytest -q")


# --- reading the pages ------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Snippet:
    doc: Path
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}: {self.text}"


def fenced_blocks(text: str) -> Iterator[tuple[str, int, list[str]]]:
    """(language, line number of the first body line, body lines) of every fenced block."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = re.match(r"^\s*(```+|~~~+)\s*([\w+-]*)", lines[i])
        if not opening:
            i += 1
            continue
        fence, language, start = opening.group(1), opening.group(2).lower(), i + 1
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            i += 1
        yield language, start + 1, lines[start:i]
        i += 1


def prose(text: str) -> str:
    """The page without its fenced blocks (their lines left empty, so line numbers hold)."""
    lines = text.splitlines()
    for _language, first, body in fenced_blocks(text):
        for n in range(first - 2, first + len(body)):
            if n < len(lines):
                lines[n] = ""
    return "\n".join(lines)


def shell_commands(doc: Path) -> list[Snippet]:
    """Every logical line (continuations joined) of the page's fenced shell blocks."""
    found = []
    for language, first, body in fenced_blocks(doc.read_text(encoding="utf-8")):
        if language not in SHELL_LANGUAGES:
            continue
        pending, start = "", 0
        for n, line in enumerate(body, first):
            if not pending:
                start = n
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            command = " ".join((pending + line).split())
            pending = ""
            if command and not command.startswith("#"):
                found.append(Snippet(doc, start, command))
    return found


def inline_spans(doc: Path) -> list[Snippet]:
    """Every inline code span of the page's prose (a span may wrap onto the next line)."""
    text = prose(doc.read_text(encoding="utf-8"))
    return [Snippet(doc, text.count("\n", 0, m.start()) + 1, " ".join(m.group(1).split()))
            for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", text)]


def toml_blocks(doc: Path) -> list[Snippet]:
    return [Snippet(doc, first, "\n".join(body)) for language, first, body in
            fenced_blocks(doc.read_text(encoding="utf-8")) if language == "toml"]


def links(doc: Path) -> list[Snippet]:
    text = prose(doc.read_text(encoding="utf-8"))
    return [Snippet(doc, text.count("\n", 0, m.start()) + 1, m.group(1))
            for m in re.finditer(r"\]\(([^)\s]+)\)", text)]


# --- what a value may be ----------------------------------------------------------------------------------------

def is_placeholder(value: str) -> bool:
    """``DIR``, ``OWNER/SLUG``, ``TABLE.FIELD=VALUE``, ``<you>/x``, ``...``: a name for any value."""
    return value == "..." or "<" in value or bool(re.fullmatch(r"[A-Z][A-Z0-9_]*(?:[./=:-][A-Z][A-Z0-9_]*)*/?",
                                                              value))


def task_file(value: str) -> str:
    """A challenges or solutions argument: a data set name must be a real one; a path is taken as it is (the page's
    files are the reader's, not this repository's)."""
    looks_named = re.fullmatch(r"arc-(?:agi|prize)-[\w-]+/[\w-]+", value) is not None
    if looks_named and value not in NAMED_SETS:
        raise argparse.ArgumentTypeError(f"{value}: not a named data set ({', '.join(NAMED_SETS)})")
    return value


class AnyChoice(list):
    """A flag's choices, plus any placeholder."""

    def __contains__(self, value: object) -> bool:
        return (isinstance(value, str) and is_placeholder(value)) or super().__contains__(value)


class DocCommandError(Exception):
    """What the parser would have printed as ``error: ...`` and exited 2 on."""


def _refuse(parser: argparse.ArgumentParser, message: str) -> None:
    raise DocCommandError(f"{parser.prog}: {message}")


def parsers_below(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    seen: set[int] = set()
    todo = [parser]
    while todo:
        p = todo.pop()
        if id(p) in seen:
            continue
        seen.add(id(p))
        yield p
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())


def lenient(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``parser`` (and every subcommand's) made to take placeholders, to check data set names without writing
    them, to refuse abbreviations, and to raise ``DocCommandError`` instead of printing and exiting."""
    for p in parsers_below(parser):
        p.allow_abbrev = False
        p.error = functools.partial(_refuse, p)
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction) or getattr(action, "_doc_lenient", False):
                continue
            convert = action.type
            if convert in (challenges_file, solutions_file):
                convert = task_file

            def parse(text: str, convert: Any = convert) -> Any:
                return text if is_placeholder(text) or convert is None else convert(text)

            parse.__name__ = getattr(action.type, "__name__", "value")
            action.type = parse
            if action.choices is not None:
                action.choices = AnyChoice(action.choices)
            action._doc_lenient = True
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | None:
    """Parse ``argv`` as the command would; ``...`` may stand for omitted arguments. None for ``--help``."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            namespace, extra = parser.parse_known_args(argv)
    except SystemExit as exc:  # --help printed its text
        if exc.code in (0, None):
            return None
        raise
    except DocCommandError as exc:
        if "..." in argv and "the following arguments are required" in str(exc):
            return None
        raise
    unknown = [arg for arg in extra if arg != "..."]
    if unknown:
        raise DocCommandError(f"{parser.prog}: unrecognized arguments: {' '.join(unknown)}")
    return namespace


def check_settings(namespace: argparse.Namespace, argv: list[str]) -> None:
    """``--set TABLE.FIELD=VALUE`` names a setting of the command; ``--config NAME`` a built-in config."""
    schemas = getattr(namespace, SET_SCHEMAS, None)
    values = [text for text in getattr(namespace, "set", None) or [] if not is_placeholder(text)]
    if schemas and values:
        checked = argparse.Namespace(**{**vars(namespace), "set": values})
        for schema in schemas:
            apply_overrides({}, set_overrides(checked, schema), schema)
    config = getattr(namespace, "config", None)
    if isinstance(config, str) and "--config" in argv and not is_placeholder(config) and "/" not in config:
        resolve_config_path(config)


def repo_path_problem(token: str) -> str | None:
    """A path into this repository (``arc_kit/configs/nvarc.toml``, ``docs/solver.md``) that does not exist."""
    path = token.split("=", 1)[-1].split("#")[0].rstrip("/.,;:")
    if not path.startswith(REPO_FOLDERS) or is_placeholder(path) or any(c in path for c in "<>*{}[]|"):
        return None
    return None if (REPO / path).exists() else f"{path}: no such file or folder in the repository"


# --- the parsers that run the commands --------------------------------------------------------------------------

class _Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser, args: list[str]) -> None:
        self.parser, self.args = parser, args


@functools.cache
def kit_parser() -> argparse.ArgumentParser:
    return lenient(build_parser())


@functools.cache
def script_parser(name: str) -> tuple[argparse.ArgumentParser, tuple[str, ...]]:
    """The parser ``scripts/<name>`` parses its arguments with, and the arguments it puts before the user's (a
    wrapper over ``arc-kit`` puts its command: ``("kernel", "push")``). The script runs as ``__main__`` with no
    arguments until it first parses them (``parse_args`` or ``parse_known_args``), which stops it."""
    path = REPO / "scripts" / name

    def stop(self: argparse.ArgumentParser, args: list[str] | None = None, namespace: Any = None) -> None:
        raise _Parsed(self, [] if args is None else list(args))

    environ, sys_path, argv = dict(os.environ), list(sys.path), list(sys.argv)
    sys.argv, sys.path[:0] = [str(path)], [str(path.parent)]
    try:
        with mock.patch.object(argparse.ArgumentParser, "parse_args", stop), \
                mock.patch.object(argparse.ArgumentParser, "parse_known_args", stop):
            runpy.run_path(str(path), run_name="__main__")
    except _Parsed as parsed:
        return lenient(parsed.parser), tuple(parsed.args)
    finally:
        sys.argv, sys.path[:] = argv, sys_path
        os.environ.clear()
        os.environ.update(environ)
    raise AssertionError(f"scripts/{name} ended without parsing its arguments")


def command_parser(parser: argparse.ArgumentParser, tokens: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The (sub)command parser ``tokens`` name, and the tokens after the command's name."""
    while tokens:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or tokens[0].startswith("-"):
            break
        if tokens[0] not in sub.choices:
            if is_placeholder(tokens[0]):
                break
            raise DocCommandError(f"{parser.prog}: no command {tokens[0]!r} (commands: {', '.join(sub.choices)})")
        parser, tokens = sub.choices[tokens[0]], tokens[1:]
    return parser, tokens


# --- the checks -------------------------------------------------------------------------------------------------

def invocation(tokens: list[str]) -> tuple[str, list[str]] | None:
    """("arc-kit" or the script's file name, its arguments) when ``tokens`` run the kit, else None."""
    for i, token in enumerate(tokens):
        if token == "arc-kit":
            return "arc-kit", tokens[i + 1:]
        if token == "arc_kit.cli" and i and tokens[i - 1] == "-m":
            return "arc-kit", tokens[i + 1:]
        script = re.fullmatch(r"(?:\./)?scripts/([\w.-]+\.py)", token)
        if script:
            return script.group(1), tokens[i + 1:]
    return None


def check_shell(command: str, parser: argparse.ArgumentParser | None = None) -> list[str]:
    """Problems with one line of a shell block: each ``&&``/``;``/``|`` part that runs the kit is parsed whole."""
    try:
        tokens = shlex.split(command.removeprefix("!"), comments=True)
    except ValueError as exc:
        return [f"cannot split into words: {exc}"]
    parts: list[list[str]] = [[]]
    for token in tokens:
        if token in ("&&", "||", ";", "|"):
            parts.append([])
        else:
            parts[-1].append(token)
    problems = [p for token in tokens if (p := repo_path_problem(token))]
    for part in parts:
        found = invocation(part)
        if found is None:
            continue
        name, argv = found
        try:
            if name == "arc-kit":
                runs, argv_parsed = parser or kit_parser(), argv
            elif not (REPO / "scripts" / name).is_file():
                problems.append(f"scripts/{name}: no such script")
                continue
            else:
                runs, before = script_parser(name)
                argv_parsed = [*before, *argv]
            command, rest = command_parser(runs, argv_parsed)
            unknown = unknown_flags(command, rest)
            if unknown:  # named first: argparse would report a required flag missing before an unknown one
                problems += [f"{command.prog}: no flag {flag}" for flag in unknown]
                continue
            namespace = parse(runs, argv_parsed)
            if namespace is not None:
                check_settings(namespace, argv)
        except (DocCommandError, SettingsError, argparse.ArgumentTypeError) as exc:
            problems.append(" ".join(str(exc).split()))
    return problems


def setting_exists(path: list[str]) -> bool:
    """Whether ``path`` (``["solver", "selection", "vote_weight"]``) is a table or a setting of some schema."""
    for schema in settings_schemas():
        here: Any = schema
        for part in path:
            hints = typing.get_type_hints(here) if dataclasses.is_dataclass(here) else {}
            hint = hints.get(part)
            if hint is None or typing.get_origin(hint) is typing.ClassVar:
                break
            args = typing.get_args(hint)  # list[SourceTable]: its tables ([[data.sources]])
            here = args[0] if typing.get_origin(hint) is list and args and dataclasses.is_dataclass(args[0]) else hint
        else:
            return True
    return False


def setting_problem(text: str) -> str | None:
    """A setting named in prose that does not exist: ``solver.views``, ``ttt.lora.r = 32``, ``[solver.selection]``,
    ``[ttt] loss_on``. Text whose first part is no settings table (``arc_kit.cli``) is not a setting."""
    table = re.fullmatch(r"\[\[?([a-z_.]+)\]\]?(?: ([a-z_]+)(?: = .+)?)?", text)
    dotted = re.fullmatch(r"([a-z_]+(?:\.[a-z_]+)+)(?: ?= ?\S.*)?", text)
    if table:
        path = table.group(1).split(".") + ([table.group(2)] if table.group(2) else [])
    elif dotted:
        path = dotted.group(1).split(".")
    else:
        return None
    tables = {name for schema in settings_schemas() for name in typing.get_type_hints(schema)}
    if path[0] not in tables or path[-1] in ("py", "md", "json", "toml", "txt", "jsonl"):
        return None
    return None if setting_exists(path) else f"{'.'.join(path)}: no such setting"


def python_name_problem(text: str) -> str | None:
    """A dotted name in the kit (``arc_kit.run.entry.run_kernel_kind``) that does not import."""
    if not re.fullmatch(r"arc_kit(?:\.\w+)+", text):
        return None
    parts = text.split(".")
    for n in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:n]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[n:]:
            if not hasattr(found, attribute):
                return f"{text}: {'.'.join(parts[:n])} has no {'.'.join(parts[n:])}"
            found = getattr(found, attribute)
        return None
    return f"{text}: no such module"


def check_inline(span: str, parser: argparse.ArgumentParser | None = None) -> list[str]:
    """Problems with an inline span: a repository path that does not exist; for a span running the kit, a command
    or a flag that does not exist (the span may leave out values and arguments)."""
    problems = [p for p in (setting_problem(span), python_name_problem(span)) if p]
    tokens = [t.strip("[](),") for t in re.split(r"[\s|]+", span) if t.strip("[](),")]
    problems += [p for token in tokens if (p := repo_path_problem(token))]
    problems += [p for flag, value in zip(tokens, tokens[1:], strict=False)
                 if flag == "--set" and (p := setting_problem(value))]
    found = invocation(tokens)
    if found is None:
        return problems
    name, argv = found
    if name != "arc-kit" and not any(t.startswith("-") for t in argv):
        return problems  # a script named, not run
    try:
        if name == "arc-kit":
            command, rest = command_parser(parser or kit_parser(), argv)
        elif not (REPO / "scripts" / name).is_file():
            return [*problems, f"scripts/{name}: no such script"]
        else:
            script, before = script_parser(name)
            command, rest = command_parser(script, [*before, *argv])
    except DocCommandError as exc:
        return [*problems, str(exc)]
    return problems + [f"{command.prog}: no flag {flag}" for flag in unknown_flags(command, rest)]


def unknown_flags(command: argparse.ArgumentParser, tokens: list[str]) -> list[str]:
    """The flags among ``tokens`` that ``command`` does not have (``--out=DIR`` names ``--out``)."""
    flags = [t.split("=", 1)[0] for t in tokens if re.match(r"--?[A-Za-z]", t)]
    return [flag for flag in flags if flag not in command._option_string_actions]


def settings_schemas() -> list[type]:
    """Every settings schema a command reads (``--set``'s tables): the training config, the kernels' plans."""
    schemas: list[type] = []
    for p in parsers_below(kit_parser()):
        for schema in p._defaults.get(SET_SCHEMAS, ()):
            if schema not in schemas:
                schemas.append(schema)
    return schemas


def check_toml(text: str) -> list[str]:
    """Problems with a TOML block: it must read as (a part of) one settings file."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return [f"not TOML: {exc}"]
    errors = []
    for schema in settings_schemas():
        try:
            fill(schema, raw, "")
            return []
        except SettingsError as exc:
            errors.append(f"as {schema.__name__}: {exc}")
    return errors


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    return {github_anchor(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$",
                                                           prose(doc.read_text(encoding="utf-8")), re.M)}


def check_link(doc: Path, target: str) -> list[str]:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
        return []
    path, _, anchor = target.partition("#")
    file = (doc.parent / path).resolve() if path else doc
    shown = file.relative_to(REPO).as_posix() if file.is_relative_to(REPO) else str(file)
    if not file.exists():
        return [f"{target}: {shown} does not exist"]
    if anchor and file.suffix == ".md" and anchor not in anchors(file):
        return [f"{target}: {shown} has no heading #{anchor}"]
    return []


# --- the tests --------------------------------------------------------------------------------------------------

SHELL = [s for doc in DOCS for s in shell_commands(doc)]
INLINE = [s for doc in DOCS for s in inline_spans(doc)]
TOML = [s for doc in DOCS for s in toml_blocks(doc)]
LINKS = [s for doc in DOCS for s in links(doc)]


def test_the_pages_show_commands_to_check():
    """The extraction finds what the pages hold: if it found nothing, every test below would pass vacuously."""
    kit = [s for s in SHELL if invocation(shlex.split(s.text.removeprefix("!"), comments=True))]
    assert len(kit) >= 30 and len(TOML) >= 2 and len(LINKS) >= 10, (len(kit), len(TOML), len(LINKS))
    assert any(s.doc.name == "README.md" and "arc-kit train" in s.text for s in SHELL)


@pytest.mark.parametrize("snippet", SHELL, ids=str)
def test_every_command_in_a_shell_block_parses(snippet: Snippet):
    assert not check_shell(snippet.text), f"{snippet}\n  " + "\n  ".join(check_shell(snippet.text))


@pytest.mark.parametrize("snippet", INLINE, ids=str)
def test_every_inline_command_and_path_exists(snippet: Snippet):
    assert not check_inline(snippet.text), f"{snippet}\n  " + "\n  ".join(check_inline(snippet.text))


@pytest.mark.parametrize("snippet", TOML, ids=lambda s: f"{s.doc.relative_to(REPO)}:{s.line}")
def test_every_toml_block_is_a_settings_file(snippet: Snippet):
    assert not check_toml(snippet.text), f"{snippet}\n  " + "\n  ".join(check_toml(snippet.text))


@pytest.mark.parametrize("snippet", LINKS, ids=str)
def test_every_relative_link_resolves(snippet: Snippet):
    assert not check_link(snippet.doc, snippet.text), check_link(snippet.doc, snippet.text)


def test_the_readme_keeps_its_two_commands_and_they_install_what_ci_installs():
    readme = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert DEMO_COMMAND in readme and TEST_COMMAND in readme
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    install = next(line for line in ci if "pip install" in line and "torch==" in line)
    assert install.replace(" -q", "") == TEST_COMMAND.rsplit(" && ", 1)[0]
    assert any(line.startswith(TEST_COMMAND.rsplit(" && ", 1)[1]) for line in ci)
    assert DEMO_COMMAND.split(" && ")[0] == TEST_COMMAND.split(" && ")[0]  # the same torch
    assert all(" -c constraints.txt" in command.split(" && ")[1] for command in (DEMO_COMMAND, TEST_COMMAND))
    assert not check_shell(DEMO_COMMAND)


# --- the checks can fail ----------------------------------------------------------------------------------------

SHELL_WRONG = [
    ("arc-kit kernel biuld --owner you", "no command 'biuld'"),
    ("arc-kit dry-run --model DIR --challenges arc-agi-2/evaluation --out DIR --scoring-veiws 4",
     "no flag --scoring-veiws"),
    ("arc-kit dry-run --model DIR --challenges arc-agi-3/evaluation --out DIR", "not a named data set"),
    ("arc-kit kernel build --kind trian", "invalid choice"),
    ("arc-kit submit --kernel you/arc-kit-submission --version one", "invalid int value"),
    ("arc-kit select runs/a --formule nvarc", "no flag --formule"),
    ("arc-kit kernel output --outt kernel-output/", "no flag --outt"),
    ("arc-kit dry-run --model DIR --challenges arc-agi-2/evaluation --out DIR extra", "unrecognized arguments: extra"),
    ("arc-kit dry-run --model DIR --challenges arc-agi-2/evaluation --out DIR --scoring 4",
     "no flag --scoring"),  # no abbreviations
    ("arc-kit train --config gpu-qwen --set train.outptu_dir=runs/x", "unknown setting outptu_dir"),
    ("arc-kit train --config gpu-qwne", "no such config file"),
    ("arc-kit kernel build --settings arc_kit/configs/nvarc-typo.toml", "no such file"),
    ("python scripts/pretrian.py --config tiny-cpu", "no such script"),
    ("python scripts/export.py runs/x --out DIR --dtyp bfloat16", "no flag --dtyp"),
    ("python scripts/bench_solver.py --taks 3", "no flag --taks"),
    ("python scripts/push_kernel.py --kind trian", "invalid choice"),
]
INLINE_WRONG = [  # a span may be a fragment: only its names are checked
    ("arc-kit kernel output --kindd evaluate", "no flag --kindd"),
    ("arc-kit shrink-vocb MODEL_DIR --out DIR", "no command"),
    ("python scripts/bench_inference.py --model 25m", "no flag --model"),
    ("arc_kit/solve/dfss.py", "no such file"),
    ("arc_kit.run.entry.run_kernel_knd", "has no run_kernel_knd"),
    ("solver.viewz", "no such setting"),
    ("ttt.lora.rank = 32", "no such setting"),
    ("[solver.selektion]", "no such setting"),
    ("[ttt] los_on", "no such setting"),
    ("--set train.outptu_dir=runs/x", "no such setting"),
]


@pytest.mark.parametrize("check, text, problem", [(check_shell, *case) for case in SHELL_WRONG]
                         + [(check_inline, *case) for case in INLINE_WRONG], ids=lambda x: getattr(x, "__name__", x))
def test_a_wrong_command_or_name_is_refused(check: Callable[[str], list[str]], text: str, problem: str):
    problems = check(text)
    assert any(problem in p for p in problems), problems


def test_a_removed_subcommand_or_flag_fails_the_pages():
    """The pages are checked against the CLI as it is: take a command or a flag out of it, and they fail."""
    parser = lenient(build_parser())
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    del commands.choices["demo"]
    assert check_shell(DEMO_COMMAND, parser) and check_inline("arc-kit demo --out DIR", parser)

    parser = lenient(build_parser())
    build, _ = command_parser(parser, ["kernel", "build"])
    action = build._option_string_actions.pop("--weights-dataset")
    action.option_strings = ["--weights-dataset-gone"]
    build._option_string_actions["--weights-dataset-gone"] = action
    failing = [s for s in SHELL if "--weights-dataset" in s.text and check_shell(s.text, parser)]
    assert failing, "no page shows --weights-dataset, or the check missed its removal"


@pytest.mark.parametrize("block, problem", [
    ('[solver]\nviewz = 4', "viewz"),
    ('[solvr]\nviews = 4', "solvr"),
    ('[train]\nlearning_rate = "fast"', "expected float"),
])
def test_a_wrong_toml_block_is_refused(block: str, problem: str):
    assert any(problem in p for p in check_toml(block)), check_toml(block)


def test_a_broken_link_is_refused():
    readme = REPO / "README.md"
    assert check_link(readme, "docs/nowhere.md")
    assert check_link(readme, "docs/solver.md#no-such-heading")
    assert not check_link(readme, "https://example.com/x")
