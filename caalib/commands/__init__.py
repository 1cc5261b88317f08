"""Sub-commands of ``caa``, one module per stage; each exposes ``register(subparsers)``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


class DeprecatedAlias(argparse.Action):
    """An option's former name, kept for one release: stores into the new option's
    ``dest`` and prints ``caa <command>: warning: <old> is deprecated, use <new>``."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, new: str, command: str,
                 **kwargs: Any) -> None:
        self.new, self.command = new, command
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(f"caa {self.command}: warning: {option_string} is deprecated, use {self.new}",
              file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_deprecated_alias(p: argparse.ArgumentParser, old: str, new: str, dest: str,
                         command: str, **kwargs: Any) -> None:
    """Register ``old`` as a deprecated spelling of the option ``new`` (same ``dest``)."""
    p.add_argument(old, dest=dest, action=DeprecatedAlias, new=new, command=command,
                   default=argparse.SUPPRESS, help=f"deprecated alias of {new}", **kwargs)
