"""The ``cosmos-ros`` command: one sub-command per capability.

Each capability owns a small ``cli`` module with a ``register(subparsers)`` function that adds
its sub-command; heavy imports (torch, diffusers, rclpy) happen inside the handlers so that
``cosmos-ros --help`` stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from cosmos_ros import __version__

#: Modules that contribute sub-commands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "cosmos_ros.model.cli",
    "cosmos_ros.bag_tools.cli",
    "cosmos_ros.registry.cli",
    "cosmos_ros.training.cli",
    "cosmos_ros.training.mini.cli",
    "cosmos_ros.evaluation.cli",
    "cosmos_ros.nodes.cli",
    "cosmos_ros.demo_cli",
)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` only where the help does not state its default already.

    Why: argparse's formatter appends it to every option, so hand-written defaults came out twice
    and options without a default read ``(default: None)``.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False, [], argparse.SUPPRESS) or action.required:
            return text
        return super()._get_help_string(action)


class CliError(Exception):
    """A user-facing error: printed as ``cosmos-ros: error: ...`` with exit code 1, no traceback."""


#: Exit status when the reader of stdout went away (128 + SIGPIPE), as Unix tools report it.
EXIT_CLOSED_PIPE = 141


def quiet_closed_pipe() -> int:
    """Stop quietly when the reader of stdout went away (``cosmos-ros ... | head``): no traceback.

    Why: Python flushes stdout again at exit and would report a second BrokenPipeError there;
    pointing the descriptor at /dev/null makes that final flush harmless.
    """
    with contextlib.suppress(OSError, ValueError):  # no real descriptor (captured output in tests)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_CLOSED_PIPE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cosmos-ros",
        description=(
            "Adapt the Cosmos Predict 2.5 video world model to your robot and run it beside it: "
            "rosbags -> datasets -> LoRA/DoRA adapters -> registry -> evaluation -> ROS 2 nodes."
        ),
        epilog="Run 'cosmos-ros COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"cosmos-ros {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # output that fit the buffer meets a closed pipe only here
        return code
    except BrokenPipeError:
        return quiet_closed_pipe()
    except CliError as exc:
        print(f"cosmos-ros: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cosmos-ros: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # As `python -m cosmos_ros.cli` this file runs as __main__, whose CliError is not the class the
    # sub-commands import and raise; run the imported module's main so their errors print cleanly.
    from cosmos_ros.cli import main as imported_main

    sys.exit(imported_main())
