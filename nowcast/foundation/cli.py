"""What every command-line interface shares: the help layout and the bad-input exit status."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Callable

__all__ = ["HelpFormatter", "BAD_INPUT", "fail", "count", "seed", "positive_float", "fraction", "exit_now",
           "run_main"]

#: Exit status for bad input (a clear message, nothing written).
BAD_INPUT = 2


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and epilog's layout and appends each option's default to its help.

    Flags (default ``False``), options without a default (``None``) and help texts that already
    say their default are left as they are.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        no_default = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if no_default or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def fail(error: BaseException) -> int:
    """Print ``error: <message>`` to standard error; returns :data:`BAD_INPUT`."""
    print(f"error: {error}", file=sys.stderr)
    return BAD_INPUT


# Option types: argparse refuses a bad value with one message and exit status 2, before anything
# heavy is imported or computed.

def _parse(text: str, convert, expected: str):
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def count(minimum: int = 1, maximum: int | None = None, why: str = ""):
    """An integer option in ``[minimum, maximum]`` (``why`` explains the maximum)."""

    def parse(text: str) -> int:
        value = _parse(text, int, "a whole number")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be ≥ {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be ≤ {maximum}{f' ({why})' if why else ''}, got {value}")
        return value

    parse.__name__ = "count"
    return parse


def seed(text: str) -> int:
    """A random seed: a whole number in ``[0, 2**62)``."""
    value = _parse(text, int, "a whole number")
    if not 0 <= value < 2 ** 62:
        raise argparse.ArgumentTypeError(f"a seed must be ≥ 0 and < 2**62, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (a learning rate, a scale)."""
    import math

    value = _parse(text, float, "a number")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def fraction(text: str) -> float:
    """A number in ``[0, 1]``."""
    value = _parse(text, float, "a number")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {text}")
    return value


def exit_now(code: int) -> None:
    """End a command-line run at once: flush the standard streams, then leave without the interpreter's
    teardown (unloading torch and its libraries takes about a second on 2 cores). Only for the end of a
    ``python -m`` entry point, once every file is written and closed."""
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(int(code))


def run_main(main: Callable[[], int]) -> int:
    """Run a command-line entry point so that SIGINT and SIGTERM stop it cleanly.

    SIGTERM is turned into the ``KeyboardInterrupt`` that SIGINT raises, so both take the same way
    out: atomic writes remove their temporary files, the training loop writes a checkpoint, a store
    build keeps what it finished. The run then ends with one line on standard error and the
    shell's status for the signal (130 for SIGINT, 143 for SIGTERM), never a traceback.

    Parameters
    ----------
    main : callable
        The entry point, ``main() -> exit status``.

    Returns
    -------
    int
        Its exit status, or ``128 + signal number`` when interrupted.
    """
    caught: list = []

    def on_term(signum, frame):
        caught.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        return main()
    except KeyboardInterrupt:
        sig = signal.Signals(caught[-1] if caught else signal.SIGINT)
        print(f"interrupted by {sig.name}: stopped without leaving partial output; running the same command "
              "again starts over (a training run or a store build resumes from its last checkpoint)",
              file=sys.stderr)
        return 128 + int(sig)
    finally:
        signal.signal(signal.SIGTERM, previous)
