"""The architecture as rules a test can hold: settings have one default (in their dataclass), the packages import
downwards only, and the kit's own errors share one base."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
import typing
from pathlib import Path

import arc_kit
from arc_kit.config.run import KernelPlan

PACKAGE = Path(arc_kit.__file__).parent
# Lower layers first: a module may import its own layer and the ones before it, never one after it.
LAYERS = ["errors", "core", "config", "models", "solve", "training", "kaggle", "run", "demo", "cli"]


def _setting_names(cls: type) -> set[str]:
    names = set()
    for name, hint in typing.get_type_hints(cls).items():
        names |= _setting_names(hint) if dataclasses.is_dataclass(hint) else {name}
    return names


def _modules(prefixes: tuple[str, ...]) -> list:
    found = []
    for info in pkgutil.walk_packages(arc_kit.__path__, "arc_kit."):
        if info.name.startswith(prefixes) and not info.name.endswith("__main__"):
            found.append(importlib.import_module(info.name))
    return found


def test_no_solver_signature_shadows_a_setting_with_a_default_of_its_own():
    """A parameter named after a run setting takes its value from the caller (who has the settings), never from
    a default written beside the function: such a default silently differs from the setting one day."""
    settings = set().union(*(_setting_names(t) for t in typing.get_type_hints(KernelPlan).values()))
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


def test_packages_import_downwards_only():
    """core, config, models, solve, training, kaggle, run, cli: each imports only its own package and those
    before it (function-level imports included), so there is no cycle and a reader can start at the bottom."""
    upward = []
    for path in PACKAGE.rglob("*.py"):
        module = "arc_kit." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        here = _layer(module.removesuffix(".__init__"))
        if here is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            layer = _layer(targets[0])
            if layer is not None and layer > here:
                upward.append(f"{module} imports {targets[0]}")
    assert not upward, "\n".join(upward)


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
