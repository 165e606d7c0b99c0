"""The `cosmos-ros` command: help for every sub-command, clean failures for bad ones."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from cosmos_ros.cli import build_parser


def _subcommand_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths.append((*prefix, name))
                paths.extend(_subcommand_paths(sub, (*prefix, name)))
    return paths


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cosmos_ros.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_top_level_help_lists_every_command() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert "usage: cosmos-ros" in result.stdout
    for path in _subcommand_paths(build_parser()):
        if len(path) == 1:
            assert path[0] in result.stdout


@pytest.mark.parametrize("path", _subcommand_paths(build_parser()), ids=" ".join)
def test_every_subcommand_has_help(path: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*path, "--help"])
    assert exit_info.value.code == 0


def test_unknown_subcommand_exits_2_with_a_clear_message() -> None:
    result = run_cli("frobnicate")
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr


def test_no_subcommand_exits_2() -> None:
    result = run_cli()
    assert result.returncode == 2
    assert "required: COMMAND" in result.stderr


@pytest.mark.parametrize("path", _subcommand_paths(build_parser()), ids=" ".join)
def test_help_states_each_default_once(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*path, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere
    assert "(default: None)" not in text and "(required) (default" not in text
    for option in text.split(" --")[1:]:
        assert option.count("default:") <= 1, f"--{option[:80]}"


def test_user_errors_print_one_line_without_a_traceback_under_python_m(tmp_path) -> None:
    # `python -m cosmos_ros.cli` runs the module as __main__; its errors must print like the script's.
    result = run_cli("bags", "convert", str(tmp_path / "nope"), "-o", str(tmp_path / "ds"), "--prompt", "p")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("cosmos-ros: error:") and "nope" in result.stderr


def test_a_closed_stdout_pipe_ends_any_command_quietly(tmp_path) -> None:
    # `cosmos-ros bags inspect BAG --json | head -c 1`: the reader goes away before the output is written.
    import os

    from bags_helpers import make_bag

    bag = make_bag(tmp_path, "b")
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "cosmos_ros.cli", "bags", "inspect", str(bag), "--json"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert result.returncode == 141 and "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize(("node", "parameter"), [("generation", "model_path"), ("capture", "camera_topic")])
def test_node_help_lists_its_parameters_instead_of_starting_it(node: str, parameter: str) -> None:
    pytest.importorskip("rclpy")
    result = run_cli("node", node, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: cosmos-ros node {node}" in result.stdout and f"  {parameter} " in result.stdout
    assert "configured" not in result.stdout + result.stderr  # the node did not start
