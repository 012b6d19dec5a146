"""Shared pieces of the command-line interfaces."""

from __future__ import annotations

import argparse

__all__ = ["HelpFormatter"]


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
