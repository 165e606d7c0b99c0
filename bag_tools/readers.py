"""Open any bag (ROS 1 .bag, ROS 2 sqlite3 or mcap, zstd-compressed too) through rosbags' AnyReader.

Every failure to open or read a bag becomes a :class:`BagError` that names the bag, so one bad
bag is reported clearly while the others still convert.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES: tuple[str, ...] = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)
TIME_SOURCES: tuple[str, ...] = ("header", "receive")
ROS2_METADATA = "metadata.yaml"


class BagError(RuntimeError):
    """A bag that cannot be opened or read (the message names the bag)."""


def bag_format(path: Path) -> str:
    """'ros1', 'mcap', 'sqlite3' or 'unknown', from the files on disk."""
    if path.is_file():
        return "ros1" if path.suffix == ".bag" else ("mcap" if path.suffix == ".mcap" else "unknown")
    if any(path.glob("*.mcap*")):
        return "mcap"
    if any(path.glob("*.db3*")):
        return "sqlite3"
    return "unknown"


@contextlib.contextmanager
def open_bag(path: str | os.PathLike[str]) -> Iterator[Any]:
    """An open ``AnyReader`` for one bag; errors name the bag."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    path = Path(path)
    if not path.exists():
        raise BagError(f"bag not found: {path}")
    if path.is_dir() and not (path / ROS2_METADATA).is_file():
        raise BagError(not_a_bag_message(path))
    try:
        reader = AnyReader([path], default_typestore=get_typestore(Stores.ROS2_HUMBLE))
        reader.open()
    except Exception as exc:  # rosbags raises several unrelated types for damaged bags
        raise BagError(f"cannot open bag {path}: {exc}") from exc
    try:
        yield reader
    finally:
        with contextlib.suppress(Exception):
            reader.close()


def bags_in_folder(folder: Path) -> list[Path]:
    """The bags directly inside ``folder``: ``*.bag`` files and folders holding metadata.yaml."""
    found = [
        p
        for p in folder.iterdir()
        if (p.is_file() and p.suffix == ".bag") or (p.is_dir() and (p / ROS2_METADATA).is_file())
    ]
    return sorted(found)


def not_a_bag_message(folder: Path) -> str:
    """Why a folder without metadata.yaml is not a bag, and which bags it holds (the likely intent)."""
    inside = bags_in_folder(folder)
    if not inside and (any(folder.glob("*.mcap")) or any(folder.glob("*.db3"))):
        return (
            f"{folder} holds ROS 2 storage files but no {ROS2_METADATA}, so it cannot be read as a bag; "
            f"`ros2 bag reindex {folder}` rebuilds it"
        )
    if not inside:
        return (
            f"{folder} is a folder but not a ROS 2 bag (no {ROS2_METADATA}) and holds no bags "
            f"(*.bag files or folders with {ROS2_METADATA})"
        )
    names = ", ".join(p.name for p in inside[:10])
    if len(inside) > 10:
        names += f" and {len(inside) - 10} more"
    return (
        f"{folder} is a folder of {len(inside)} bag(s), not a bag (no {ROS2_METADATA}): {names}; "
        f"pass the bags themselves, e.g. {folder}/*"
    )


def bag_files(path: Path) -> list[Path]:
    """The files that make up a bag (the file itself, or a ROS 2 folder's files), sorted."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file())


def bag_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 of a bag: of the file, or over (relative name, bytes) of a ROS 2 folder's files."""
    path = Path(path)
    # Why: the hash of nothing (e3b0c442...) must never be recorded as a bag's identity.
    if not path.exists():
        raise BagError(f"bag not found: {path}")
    files = bag_files(path)
    if not files:
        raise BagError(f"bag {path}: an empty folder, nothing to hash")
    digest = hashlib.sha256()
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    return digest.hexdigest()


def bag_sha256_in_background(path: str | os.PathLike[str]) -> Future[str]:
    """Start :func:`bag_sha256` in a thread and return its future.

    Why: hashing is a full extra read of the bag; hashlib and file reads release the GIL, so it
    runs beside the conversion instead of before it.
    """
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bag-sha256")
    future = executor.submit(bag_sha256, path)
    executor.shutdown(wait=False)
    return future


def slug(text: str) -> str:
    """A file-name-safe slug: '/cam/image_raw' -> 'cam_image_raw'."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "x"


def header_stamp_ns(msg: Any) -> int:
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def topic_table(reader: Any) -> dict[str, tuple[str, int]]:
    """topic -> (message type, message count) over all connections of an open reader."""
    out: dict[str, tuple[str, int]] = {}
    for conn in reader.connections:
        msgtype, count = out.get(conn.topic, (conn.msgtype, 0))
        out[conn.topic] = (msgtype, count + (conn.msgcount or 0))
    return out


def describe_topics(reader: Any) -> str:
    """'/a (sensor_msgs/msg/Image), /b (...)' for error messages."""
    return ", ".join(f"{t} ({m})" for t, (m, _) in sorted(topic_table(reader).items())) or "(none)"
