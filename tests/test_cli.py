"""Command-line help: every option explains itself and shows a default only where it has one."""

import argparse

import pytest

from nowcast.foundation.cli import HelpFormatter


def _imagegen_parsers():
    from nowcast.imagegen.__main__ import _parser
    from nowcast.imagegen.bench import _parser as bench_parser

    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {**{f"imagegen {k}": v for k, v in sub.choices.items() if k != "bench"}, "imagegen bench": bench_parser()}


@pytest.mark.parametrize("name", ["imagegen sample", "imagegen train-solver", "imagegen fid", "imagegen bench"])
def test_every_option_has_help(name):
    parser = _imagegen_parsers()[name]
    undocumented = [a.option_strings or a.dest for a in parser._actions if not a.help]
    assert undocumented == []


def test_defaults_are_shown_once_and_only_when_real():
    p = argparse.ArgumentParser(formatter_class=HelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="seed")
    p.add_argument("--lr", type=float, default=None, help="learning rate")
    p.add_argument("--out", default="a.png", help="output (default: next to the input)")
    p.add_argument("--fast", action="store_true", help="go fast")
    text = " ".join(p.format_help().split())
    assert "seed (default: 0)" in text                    # 0 is a value, not "no default"
    assert "learning rate (default" not in text
    assert text.count("default") == 2                     # the seed's and the one the help states
    assert "go fast (default" not in text


def _subparsers(parser, prefix):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {prefix: parser}
    return {f"{prefix} {k}": v for k, v in subs[0].choices.items()}


def _every_parser():
    import importlib

    out = {}
    for module in ("nowcast.forecast", "nowcast.evaluate", "nowcast.train", "nowcast.data.__main__",
                   "nowcast.imagegen.__main__", "nowcast.imagegen.bench", "nowcast.imagegen.odel_bench",
                   "nowcast.solvers.bench"):
        out.update(_subparsers(importlib.import_module(module)._parser(), module.replace(".__main__", "")))
    return out


PARSERS = sorted(_every_parser())


@pytest.mark.parametrize("name", PARSERS)
def test_every_cli_option_has_help_and_an_honest_default(name):
    parser = _every_parser()[name]
    undocumented = [a.option_strings or a.dest for a in parser._actions if not a.help]
    assert undocumented == [], f"{name}: options without help {undocumented}"
    for action in parser._actions:
        if not action.help or action.help == argparse.SUPPRESS:
            continue
        text = HelpFormatter("x")._get_help_string(action) % {"default": action.default, "prog": "x",
                                                              "choices": action.choices, "dest": action.dest,
                                                              "metavar": action.metavar}
        assert "(default: False)" not in text and "(default: None)" not in text, (name, action.option_strings, text)
        assert text.count("(default") <= 1, (name, action.option_strings, text)
