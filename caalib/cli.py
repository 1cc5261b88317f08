"""The ``caa`` command line: one sub-command per stage of the study.

Each stage registers its own sub-commands from ``caalib.commands.<stage>``; this
module only dispatches and turns the study's errors into one line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

from .errors import CaaError

#: Modules under caalib.commands, each exposing ``register(subparsers)``.
COMMAND_MODULES: tuple[str, ...] = (
    "data", "features", "model", "inputs", "train", "results", "study", "bench", "claims",
    "explain", "shift_curve", "unseen",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="caa",
        description="CAA-Net reproducibility study: data, features, models, training, results.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"caalib.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"caalib.commands.{name}":
                continue  # stage not built yet
            raise
        module.register(sub)
    return parser


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM (kill, job schedulers, timeouts) into KeyboardInterrupt meanwhile.

    Python's default SIGTERM action ends the process without unwinding, which would
    leave the temporary file of an atomic write (a feature cache, a checkpoint) beside
    its target; as an exception, the atomic writers remove it and the CLI reports it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # the words of the command, for records that say how a result was made
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with sigterm_as_interrupt():
            return int(args.func(args) or 0)
    except CaaError as exc:
        print(f"caa {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"caa {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
