"""Command-line flags generated from the settings dataclasses, so a flag and its default cannot drift apart.

``transformers.HfArgumentParser`` turns each dataclass field into ``--field_name`` (and ``--field-name``) with the
field's type, default and help; a sub-command takes those flags through argparse's ``parents``.
"""

from __future__ import annotations

import argparse
from typing import TypeVar

from arc_kit.settings import build, fields_of

T = TypeVar("T")


def settings_parent(*classes: type) -> argparse.ArgumentParser:
    """A parent parser holding the flags of ``classes`` (pass it as ``parents=[...]`` to ``add_parser``)."""
    from transformers import HfArgumentParser

    return HfArgumentParser(list(classes), add_help=False)


def settings_from_args(args: argparse.Namespace, cls: type[T]) -> T:
    """The ``cls`` instance the parsed flags describe (checking its values is the caller's next step)."""
    return build(cls, fields_of(args, cls))
