"""Concurrent writers and killed writers, with real processes and SIGKILL."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from registry_helpers import make_adapter_folder, register_many

from cosmos_ros.registry import open_registry
from cosmos_ros.registry.artifacts import FAULT_ENV


def test_two_processes_registering_one_name_get_distinct_versions(tmp_path: Path) -> None:
    registry_dir = tmp_path / "registry"
    open_registry(registry_dir).close()  # create the schema first, like a deployed registry
    folders = [make_adapter_folder(tmp_path / f"a{i}", seed=i) for i in range(2)]
    per_process = 4
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Manager().Barrier(2)
    with ctx.Pool(2) as pool:
        results = [
            pool.apply_async(
                register_many, (str(registry_dir), str(folder), "ur5e.pick", per_process, barrier)
            )
            for folder in folders
        ]
        ids = [result.get(timeout=120) for result in results]
    assert all(len(batch) == per_process for batch in ids)
    everything = ids[0] + ids[1]
    assert sorted(everything, key=lambda i: int(i.split("@")[1])) == [
        f"ur5e.pick@{v}" for v in range(1, 2 * per_process + 1)
    ]
    with open_registry(registry_dir) as registry:
        records = registry.list(name="ur5e.pick")
        assert [r.version for r in records] == list(range(1, 2 * per_process + 1))
        assert len({r.created_by for r in records}) == 2
        assert registry.verify() == []
        assert len([e for e in registry.audit_log() if e.action == "register"]) == 2 * per_process


_REGISTER_SCRIPT = textwrap.dedent(
    """
    import sys
    from cosmos_ros.registry import open_registry
    registry = open_registry(sys.argv[1])
    registry.register(sys.argv[2], "ur5e.pick")
    """
)


@pytest.mark.parametrize(
    ("point", "leftover"),
    [("during_copy", "temp_file"), ("after_blob", "orphan_blob"), ("in_transaction", "orphan_blob")],
)
def test_killed_register_leaves_no_record_and_verify_sees_the_leftover(
    tmp_path: Path, point: str, leftover: str
) -> None:
    registry_dir = tmp_path / "registry"
    with open_registry(registry_dir) as registry:
        keep = registry.register(make_adapter_folder(tmp_path / "keep", seed=9), "ur5e.pick")
    folder = make_adapter_folder(tmp_path / "a", seed=1, extra_bytes=8 * 1024 * 1024)
    env = {**os.environ, FAULT_ENV: point}
    proc = subprocess.run(
        [sys.executable, "-c", _REGISTER_SCRIPT, str(registry_dir), str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with open_registry(registry_dir) as registry:
        assert [r.adapter_id for r in registry.list()] == [keep.adapter_id]  # no half record
        assert [e.action for e in registry.audit_log()] == ["register"]
        problems = registry.verify()
        assert [p.kind for p in problems] == [leftover]
        removed = registry.gc(min_age_s=0)
        assert len(removed) == 1 and not removed[0].exists()
        assert registry.verify() == []
        # the registry works on: the next registration takes the next version
        again = registry.register(folder, "ur5e.pick")
        assert again.version == 2 and registry.verify() == []


def test_gc_spares_fresh_leftovers_of_a_registration_in_progress(tmp_path: Path) -> None:
    registry_dir = tmp_path / "registry"
    folder = make_adapter_folder(tmp_path / "a", seed=1)
    proc = subprocess.run(
        [sys.executable, "-c", _REGISTER_SCRIPT, str(registry_dir), str(folder)],
        env={**os.environ, FAULT_ENV: "after_blob"},
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL
    with open_registry(registry_dir) as registry:
        assert registry.gc() == []  # default grace period: could belong to a live registration
        assert [p.kind for p in registry.verify()] == ["orphan_blob"]
