"""What every command-line interface shares: the help layout and the bad-input exit status."""

from __future__ import annotations

import argparse
import sys

__all__ = ["HelpFormatter", "BAD_INPUT", "fail"]

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
