"""Helpers for tests that run real rclpy nodes in other processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def start_python(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``python -c script args...`` in a new process with this run's ROS domain."""
    full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 30.0) -> list[str]:
    """Read the process's output until a line contains ``needle``; fail with the output seen."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    buf = ""
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 65536).decode(errors="replace")
        except BlockingIOError:
            chunk = ""
        if chunk:
            buf += chunk
            *lines, buf = buf.split("\n")
            seen.extend(lines)
            if any(needle in line for line in lines):
                return seen
        elif proc.poll() is not None and not chunk:
            break
        else:
            time.sleep(0.05)
    raise AssertionError(f"{needle!r} not printed within {timeout} s; output:\n" + "\n".join([*seen, buf]))


def stop(proc: subprocess.Popen[str], timeout: float = 10.0) -> str:
    """Interrupt the process, wait for it and return what it printed afterwards."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is None:
        return ""
    os.set_blocking(proc.stdout.fileno(), True)
    return proc.stdout.read() or ""


REPO_ROOT = Path(__file__).resolve().parent.parent


def set_param(
    setup, name: str, value: str | int | float, node: str = "/generation_node", timeout: float = 10.0
):
    """Set one parameter through the node's set_parameters service; returns its SetParametersResult."""
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    if isinstance(value, str):
        typed = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    elif isinstance(value, int):
        typed = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    else:
        typed = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    client = setup["client"]
    srv = client.node.create_client(SetParameters, f"{node}/set_parameters")
    assert srv.wait_for_service(timeout_sec=10)
    request = SetParameters.Request(parameters=[ParameterMsg(name=name, value=typed)])
    return client.wait(srv.call_async(request), timeout).results[0]
