"""The architecture as rules a test can hold: settings have one default (in their dataclass) and names that say
what they hold, the packages import downwards only, and the kit's own errors share one base."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
import typing
from pathlib import Path

import arc_kit
from arc_kit.config.run import SubmissionConfig

PACKAGE = Path(arc_kit.__file__).parent
# Lower layers first: a module may import its own layer and the ones before it, never one after it.
LAYERS = ["errors", "core", "config", "models", "solve", "training", "kaggle", "run", "demo", "cli"]


def _setting_names(cls: type) -> set[str]:
    names = set()
    for name, hint in typing.get_type_hints(cls).items():
        names |= _setting_names(hint) if dataclasses.is_dataclass(hint) else {name}
    return names


# Modules no test imports just to look inside: importing them has effects beyond the kit (they define no error).
NOT_IMPORTED = {"arc_kit.kaggle.strict_api": "imports the kaggle client, which authenticates when it is imported"}


def _modules(prefixes: tuple[str, ...]) -> list:
    found = []
    for info in pkgutil.walk_packages(arc_kit.__path__, "arc_kit."):
        if info.name.startswith(prefixes) and not info.name.endswith("__main__") and info.name not in NOT_IMPORTED:
            found.append(importlib.import_module(info.name))
    return found


def test_no_solver_signature_shadows_a_setting_with_a_default_of_its_own():
    """A parameter named after a run setting takes its value from the caller (who has the settings), never from
    a default written beside the function: such a default silently differs from the setting one day."""
    settings = set().union(*(_setting_names(t) for t in typing.get_type_hints(SubmissionConfig).values()))
    shadowed = []
    for module in _modules(("arc_kit.solve", "arc_kit.core.augment", "arc_kit.run")):
        for obj in vars(module).values():
            if getattr(obj, "__module__", None) != module.__name__:
                continue
            callables = [obj] if inspect.isfunction(obj) else (
                [m for m in vars(obj).values() if inspect.isfunction(m)] if inspect.isclass(obj)
                and not dataclasses.is_dataclass(obj) else [])
            for fn in callables:
                for param in inspect.signature(fn).parameters.values():
                    if param.name in settings and param.default is not inspect.Parameter.empty:
                        shadowed.append(f"{module.__name__}.{fn.__qualname__}({param.name}={param.default!r})")
    assert not shadowed, "\n".join(shadowed)


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "arc_kit" or len(parts) < 2:
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def _module_name(path: Path) -> str:
    parts = ("arc_kit", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, dict[str, int]]:
    """Every module of the kit -> the kit's modules it imports, with the line of the first such import.

    Every import counts, wherever it is written: at the top, inside a function, under ``TYPE_CHECKING``. ``from
    package import name`` is an import of the module ``package.name`` when there is one, else of the package
    (its ``__init__``). Importing ``a.b.c`` runs ``a/b/__init__.py`` first, but that is no edge here: a package's
    ``__init__`` re-exporting its own modules would otherwise be a circle with each of them, and Python resolves
    it (the package is registered before its modules run). A module importing its own package's ``__init__``
    is an edge, so a real circle through a re-export is still found."""
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, dict[str, int]] = {}
    for module, path in paths.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x, from ..core import y
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                if target in paths and target != module:
                    edges.setdefault(target, node.lineno)
        graph[module] = edges
    return graph


def _circles(graph: dict[str, dict[str, int]]) -> dict[frozenset[str], str]:
    """The strongly connected groups of more than one module (Tarjan), each with one circle through its first
    module, written ``a:LINE -> b:LINE -> a`` (the line of the import that leads on)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = {stack.pop()}
            while module not in group:
                group.add(stack.pop())
            if len(group) > 1:
                groups.append(group)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    circles = {}
    for group in groups:
        start = min(group)
        paths = {start: [start]}  # breadth first, inside the group, back to start: the shortest circle
        queue = [start]
        while queue:
            here = queue.pop(0)
            for target in sorted(graph[here]):
                if target == start:
                    queue, route = [], paths[here]
                    break
                if target in group and target not in paths:
                    paths[target] = [*paths[here], target]
                    queue.append(target)
        steps = [f"{a}:{graph[a][b]}" for a, b in zip(route, [*route[1:], start], strict=True)]
        circles[frozenset(group)] = " -> ".join([*steps, start])
    return circles


def test_packages_import_downwards_only():
    """core, config, models, solve, training, kaggle, run, cli: each imports only its own package and those
    before it (function-level imports included), so a reader can start at the bottom."""
    upward = [f"{module} imports {target} (line {line})" for module, edges in sorted(_import_graph().items())
              for target, line in edges.items()
              if _layer(module) is not None and (_layer(target) or 0) > _layer(module)]
    assert not upward, "\n".join(upward)


def test_no_module_imports_itself_through_others():
    """No circle between modules, inside a package or across: function-level and ``TYPE_CHECKING`` imports count,
    since a circle hidden in a function still means neither module can be read, tested or moved without the
    other. A circle is broken by moving what both need below both, never by hiding an import."""
    circles = _circles(_import_graph())
    assert not circles, "module circles:\n" + "\n".join(circles.values())


# Exceptions that never leave the kit: each is caught where it is raised, so it is no error a user sees.
INTERNAL = {
    "arc_kit.core.text.ParseError": "generated text that is not a grid: the solver counts it as unparsed",
    "arc_kit.solve.kv_cache.CacheRejected": "a model that refuses the in-place cache: the decoders fall back",
}


def test_every_error_the_kit_defines_is_an_arc_kit_error():
    """The CLI prints an ArcKitError as one line and lets anything else keep its traceback, so every exception
    class the kit defines for bad input must derive from it."""
    from arc_kit.errors import ArcKitError

    outside = []
    for module in _modules(("arc_kit",)):
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == module.__name__
                    and not issubclass(obj, ArcKitError) and f"{module.__name__}.{name}" not in INTERNAL):
                outside.append(f"{module.__name__}.{name}")
    assert not outside, "\n".join(outside)


def _tables(cls: type) -> list[str]:
    """The fields of settings class ``cls`` that are settings tables themselves."""
    from arc_kit.config.schema import Settings

    hints = typing.get_type_hints(cls)
    return [f.name for f in dataclasses.fields(cls) if inspect.isclass(hints[f.name])
            and issubclass(hints[f.name], Settings)]


def test_settings_types_are_named_by_what_they_hold():
    """The naming rule (``arc_kit/config/__init__.py``): a settings type that is one TOML table or part of one is
    ``...Settings``, one that is a whole settings file (two tables or more) is ``...Config``, and no other class
    takes either suffix, so a name says whether a user writes it down and how much of a file it is."""
    from arc_kit.config.schema import Settings

    wrong = []
    for module in _modules(("arc_kit",)):
        for name, obj in vars(module).items():
            if not inspect.isclass(obj) or obj.__module__ != module.__name__ or obj is Settings:
                continue
            where = f"{module.__name__}.{name}"
            if not issubclass(obj, Settings):
                if name.endswith(("Settings", "Config")):
                    wrong.append(f"{where} is no settings type: runtime state takes another word")
            elif name.endswith("Config") and len(_tables(obj)) < 2:
                wrong.append(f"{where} holds {len(_tables(obj))} table(s): a whole file holds two or more, a table "
                             "is ...Settings")
            elif not name.endswith(("Settings", "Config")):
                wrong.append(f"{where} is a settings type: ...Settings (a table) or ...Config (a whole file)")
    assert not wrong, "\n".join(wrong)


def test_classes_are_defined_at_module_level():
    """A class made inside a function is invisible to go-to-definition, type checkers and ``isinstance``; where a
    base class must not be imported early (torch, transformers, trl, the kaggle client), the class goes in a module
    that imports it at its top, itself imported lazily."""
    nested = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                nested += [f"{_module_name(path)}.{node.name} defines {inner.name} (line {inner.lineno})"
                           for inner in ast.walk(node) if isinstance(inner, ast.ClassDef)]
    assert not nested, "\n".join(nested)


def test_the_library_reports_notices_through_logging():
    """Outside the CLI, a notice is a ``logging`` record (the CLI prints them, the kernel logs them, a test or a
    notebook decides): a bare print to stderr cannot be filtered, captured or told from an error."""
    printed = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if _module_name(path).startswith("arc_kit.cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
                    and any(k.arg == "file" and "stderr" in ast.unparse(k.value) for k in node.keywords)):
                printed.append(f"{_module_name(path)} line {node.lineno}")
    assert not printed, "\n".join(printed)
