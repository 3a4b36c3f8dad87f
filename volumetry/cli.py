"""Command line of volumetry: a thin layer over the library.

Each sub-command lives in ``volumetry/commands/<name>.py`` and provides
``add_arguments(parser)`` and ``run(args) -> int``; those modules import the
heavy libraries inside ``run`` so that ``volumetry --help`` stays fast.

Exit status: 0 success, 2 bad input or usage (one line on stderr, no
traceback), 1 internal error (or, for ``run``, when any scan failed).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ._version import __version__

#: Sub-commands in the order ``--help`` lists them.
COMMANDS = ("info", "segment", "measure", "phantom", "run", "report", "regress")

log = logging.getLogger("volumetry")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (the project's rule for bad input):
    ``volumetry run: error: argument --jobs: ...; see 'volumetry run --help'``, exit status 2."""

    def error(self, message: str):  # noqa: D102 -- argparse's hook
        self.exit(2, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every available sub-command."""
    parser = _Parser(
        prog="volumetry",
        description="Lesion volumetry on MRI for clinical trials.",
    )
    parser.add_argument("--version", action="version", version=f"volumetry {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"volumetry.commands.{name}")
        except ModuleNotFoundError as exc:  # a command not built yet
            if exc.name == f"volumetry.commands.{name}":
                continue
            raise
        p = sub.add_parser(name, help=mod.HELP, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("volumetry")
    root.handlers = [h for h in root.handlers if isinstance(h, logging.NullHandler)] + [handler]
    root.setLevel(level)
    root.propagate = False


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that flushing at exit does not raise again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (e.g. captured in tests)
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    from .errors import InputError, VolumetryError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage error (2) or --help (0)
        return int(exc.code or 0)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return 2
    _setup_logging(args.verbose, args.quiet)
    try:
        return int(args._run(args))
    except InputError as exc:
        print(f"volumetry {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except VolumetryError as exc:
        print(f"volumetry {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("volumetry: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `volumetry info --json | head`: the reader went away
        _silence_stdout()
        return 1
    except Exception:  # internal error: keep the traceback for the bug report
        log.exception("internal error in 'volumetry %s'; please report it with this traceback", args.command)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
