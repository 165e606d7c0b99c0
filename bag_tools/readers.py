"""Open any bag (ROS 1 .bag, ROS 2 sqlite3 or mcap folders and files, zstd-compressed too).

Every failure to open or read a bag becomes a :class:`BagError` that names the bag (and says what a
file holds when it is not what its name says), so one bad bag is reported clearly while the others
still convert. Topics that cannot be read are left out with a warning instead of failing the bag.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
#: Foxglove's compressed video (H.264/H.265/VP9/AV1 packets; decoded in order, media/video_stream.py).
COMPRESSED_VIDEO_TYPE = "foxglove_msgs/msg/CompressedVideo"
#: image_transport's ffmpeg plugin: the same kind of packets, codec named by the encoder.
FFMPEG_PACKET_TYPE = "ffmpeg_image_transport_msgs/msg/FFMPEGPacket"
#: Types whose messages are packets of one video stream (decoded in order, not one by one).
VIDEO_TYPES: tuple[str, ...] = (COMPRESSED_VIDEO_TYPE, FFMPEG_PACKET_TYPE)
#: Camera message types the tools convert (the name says images; video packets become images).
IMAGE_TYPES: tuple[str, ...] = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE, *VIDEO_TYPES)
TIME_SOURCES: tuple[str, ...] = ("header", "receive")
ROS2_METADATA = "metadata.yaml"


class BagError(RuntimeError):
    """A bag that cannot be opened or read (the message names the bag)."""


def bag_format(path: Path) -> str:
    """'ros1', 'mcap', 'sqlite3' or 'unknown', from the files on disk."""
    if path.is_file():
        return {".bag": "ros1", ".mcap": "mcap", ".db3": "sqlite3"}.get(path.suffix, "unknown")
    if any(path.glob("*.mcap*")):
        return "mcap"
    if any(path.glob("*.db3*")):
        return "sqlite3"
    return "unknown"


#: The first bytes of the files a bag may be made of, and what they are.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"#ROSBAG V2.0", "a ROS 1 bag file"),
    (b"#ROSBAG V1.2", "a ROS 1 bag of the old format 1.2, which is not read (migrate it with `rosbag fix`)"),
    (b"\x89MCAP0\r\n", "an MCAP file"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data (a file of a ROS 2 bag compressed per file)"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"PK\x03\x04", "a zip archive"),
)
#: What each storage file suffix must hold.
_SUFFIX_KIND = {".bag": "a ROS 1 bag file", ".mcap": "an MCAP file", ".db3": "an SQLite database"}
ACCEPTED_BAGS = (
    "ROS 1 .bag files, ROS 2 bag folders (holding metadata.yaml) and single ROS 2 .mcap or .db3 files"
)


def normalize_msgtype(name: str) -> str:
    """'sensor_msgs/Image' -> 'sensor_msgs/msg/Image'; names with msg/srv/action stay as they are.

    Why: rosbag2 accepts (and older recorders wrote) type names without ``/msg/``.
    """
    parts = name.split("/")
    if len(parts) == 2 and all(parts):
        return f"{parts[0]}/msg/{parts[1]}"
    return name


def _mcap_profile(head: bytes) -> str | None:
    """The profile string of an MCAP file's header record (None when it cannot be read)."""
    try:
        if head[8] != 0x01:
            return None
        size = int.from_bytes(head[17:21], "little")
        return head[21 : 21 + size].decode("utf-8", "replace")
    except IndexError:
        return None


def describe_file(path: Path) -> str:
    """What a file holds, from its first bytes: 'a ROS 1 bag file', 'an MCAP file of profile ...', ..."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if not head:
        return "an empty file"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            if what == "an MCAP file":
                profile = _mcap_profile(head)
                return f"{what} of profile {profile!r}" if profile is not None else f"{what} with no header"
            return what
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head[:64]):
        first = head.decode("ascii", "replace").splitlines()[0][:40]
        return f"a text file (starting {first!r})"
    return f"unknown data (starting with bytes {head[:8].hex(' ')})"


def _file_problem(path: Path, bag: Path) -> str | None:
    """Why ``path`` (a file of ``bag``) cannot be the storage file its name says (None when it may be)."""
    expected = _SUFFIX_KIND.get(path.suffix)
    if expected is None:
        return None
    found = describe_file(path)
    name = "it" if path == bag else str(path)
    if found.startswith(expected):
        if expected == "an MCAP file" and found != "an MCAP file of profile 'ros2'":
            return (
                f"{name} is {found}, not a ROS 2 recording; only MCAP files of profile 'ros2' "
                "(as `ros2 bag record` writes them) are read"
            )
        return None
    rename = next((suffix for suffix, kind in _SUFFIX_KIND.items() if found.startswith(kind)), None)
    hint = f"; rename it to {path.with_suffix(rename).name}" if rename else ""
    return f"{name} is {found}, not {expected} as its name says{hint}"


def _definition_error(exc: BaseException) -> str:
    """rosbags' parse error (the whole definition, then the offset) cut to the line it stopped at."""
    lines = str(exc).split("\n")
    if len(lines) >= 3 and lines[0].startswith("Could not parse") and lines[2].strip().isdigit():
        with contextlib.suppress(ValueError, SyntaxError):
            text = ast.literal_eval(lines[1])
            pos = int(lines[2])
            number = text.count("\n", 0, pos) + 1
            line = text.split("\n")[number - 1]
            return f"rosbags cannot parse its line {line[:80]!r}"
    return _first_line(exc)


def _first_line(exc: BaseException, limit: int = 160) -> str:
    """An exception's message cut to one short line (rosbags puts whole schemas in some)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class BagReader:
    """One bag through rosbags' readers, with AnyReader's interface, tolerant of real recordings.

    Why not AnyReader: it takes any path ending in ``.bag`` for a ROS 1 file (``ros2 bag record -o
    run1.bag`` makes a folder of that name), and one message definition it cannot parse or whose
    hash disagrees makes the whole bag unreadable. Here such topics are left out and listed in
    :attr:`skipped` (topic -> why), type names without ``/msg/`` are normalized, and a topic whose
    metadata.yaml type differs from the type its storage file holds is read as stored.
    """

    def __init__(self, path: Path, default_typestore: Any) -> None:
        self.path = path
        self.default_typestore = default_typestore
        self.connections: list[Any] = []
        self.raw_connections: list[Any] = []
        #: topic -> one line saying why it cannot be read (its messages are never yielded).
        self.skipped: dict[str, str] = {}
        #: One line per thing the reader did differently from what the bag says (and why).
        self.warnings: list[str] = []
        self._orig: dict[int, Any] = {}  # id(connection shown) -> connection of the rosbags reader
        self._shown: dict[int, Any] = {}  # the reverse
        self.is2 = path.is_dir() or path.suffix in (".mcap", ".db3")
        self._reader: Any = None

    def open(self) -> None:
        """Open the bag and build the types of every topic that can be read."""
        from rosbags.rosbag1 import Reader as Reader1
        from rosbags.rosbag2 import Reader as Reader2
        from rosbags.typesys import Stores, get_typestore

        reader = Reader2(self.path) if self.is2 else Reader1(self.path)
        reader.open()
        self._reader = reader
        self.typestore = get_typestore(Stores.EMPTY)
        conns = self._stored_types(list(reader.connections))
        #: Every connection as the bag lists it, readable or not.
        self.raw_connections = conns
        bad = self._register_types(conns)
        for conn in conns:
            name = normalize_msgtype(conn.msgtype)
            if name in bad:
                count = sum(c.msgcount or 0 for c in conns if c.topic == conn.topic)
                self.skipped.setdefault(
                    conn.topic, f"{conn.topic} ({conn.msgtype}, {count} messages): {bad[name]}"
                )
                continue
            shown = conn._replace(msgtype=name)
            self._orig[id(shown)] = conn
            self._shown[id(conn)] = shown
            self.connections.append(shown)
        # A topic is skipped only when none of its connections can be read.
        readable = {c.topic for c in self.connections}
        self.skipped = {t: why for t, why in self.skipped.items() if t not in readable}
        self.warnings.extend(f"skipped topic {why}" for why in self.skipped.values())

    def _stored_types(self, conns: list[Any]) -> list[Any]:
        """Connections typed as their storage files hold them (metadata.yaml may claim another type)."""
        storages = getattr(getattr(self._reader, "storage", None), "storages", None)
        if not storages:
            return conns
        stored: dict[str, list[Any]] = {}
        for storage in storages:
            for conn in storage.connections:
                stored.setdefault(conn.topic, []).append(conn)
        out = []
        for conn in conns:
            kinds = {c.msgtype: c for c in stored.get(conn.topic, [])}
            if kinds and conn.msgtype not in kinds and len(kinds) == 1:
                actual = next(iter(kinds.values()))
                self.warnings.append(
                    f"{self.path / 'metadata.yaml'} lists {conn.topic} as {conn.msgtype}, but its storage "
                    f"file holds {actual.msgtype} messages; read as {actual.msgtype}"
                )
                conn = conn._replace(
                    msgtype=actual.msgtype, msgdef=actual.msgdef, digest=actual.digest, ext=actual.ext
                )
            out.append(conn)
        return out

    def _register_types(self, conns: list[Any]) -> dict[str, str]:
        """Register each connection's types on its own; returns type -> why it cannot be read."""
        from rosbags.interfaces import MessageDefinitionFormat as Fmt

        bad: dict[str, str] = {}
        done: set[str] = set()
        with_defs = [c for c in conns if c.msgdef.format != Fmt.NONE]
        if not with_defs:  # no definitions stored (older ROS 2 bags): the default store's types
            self.typestore.register(self.default_typestore.fielddefs)
        for conn in with_defs:
            name = normalize_msgtype(conn.msgtype)
            if name in done or name in bad:
                continue
            try:
                self.typestore.register(self._parse_definition(conn))
            except Exception as exc:  # rosbags raises several types for definitions it cannot parse
                bad[name] = f"its message definition cannot be parsed ({_definition_error(exc)})"
                continue
            done.add(name)
        for conn in conns:
            name = normalize_msgtype(conn.msgtype)
            if name in bad:
                continue
            if name not in self.typestore.fielddefs:
                bad[name] = "the bag holds no message definition for its type"
                continue
            if not conn.digest:
                continue
            try:
                have = (
                    self.typestore.hash_rihs01(name) if self.is2 else self.typestore.generate_msgdef(name)[1]
                )
            except Exception as exc:  # a definition that registered but cannot be hashed
                bad[name] = f"its type hash cannot be computed ({_first_line(exc)})"
                continue
            if have != conn.digest:
                bad[name] = f"its recorded type hash {conn.digest} does not match its definition ({have})"
        return bad

    @staticmethod
    def _parse_definition(conn: Any) -> dict[str, Any]:
        from rosbags.interfaces import MessageDefinitionFormat as Fmt
        from rosbags.typesys import get_types_from_idl, get_types_from_msg

        data = conn.msgdef.data
        if conn.msgdef.format == Fmt.MSG:
            return get_types_from_msg(data, normalize_msgtype(conn.msgtype))
        sep = "=" * 80 + "\n"
        typs: dict[str, Any] = {}
        if data.startswith(f"{sep}IDL: "):
            for part in data.split(sep)[1:]:
                typs.update(get_types_from_idl(part.split("\n", 1)[1]))
        else:
            typs.update(get_types_from_idl(data))
        return typs

    def close(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.close()

    @property
    def message_count(self) -> int:
        return int(self._reader.message_count)

    @property
    def start_time(self) -> int:
        return int(self._reader.start_time)

    @property
    def end_time(self) -> int:
        return int(self._reader.end_time)

    def messages(self, connections: Sequence[Any] = ()) -> Iterator[tuple[Any, int, bytes]]:
        """(connection, receive time ns, raw bytes) in time order; ``()`` = every readable topic."""
        wanted = [self._orig[id(c)] for c in (connections or self.connections)]
        if not wanted:
            return
        for conn, stamp, raw in self._reader.messages(connections=wanted):
            yield self._shown[id(conn)], stamp, raw

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        name = normalize_msgtype(msgtype)
        if self.is2:
            return self.typestore.deserialize_cdr(raw, name)
        return self.typestore.deserialize_ros1(raw, name)


@contextlib.contextmanager
def open_bag(path: str | os.PathLike[str]) -> Iterator[BagReader]:
    """An open :class:`BagReader` for one bag; errors name the bag and say what it is instead."""
    from rosbags.typesys import Stores, get_typestore

    path = Path(path)
    if not path.exists():
        raise BagError(f"bag not found: {path}")
    if path.is_dir() and not (path / ROS2_METADATA).is_file():
        raise BagError(not_a_bag_message(path))
    if path.is_file() and path.suffix not in _SUFFIX_KIND:
        raise BagError(f"cannot open bag {path}: it is {describe_file(path)}; accepted: {ACCEPTED_BAGS}")
    reader = BagReader(path, get_typestore(Stores.ROS2_HUMBLE))
    try:
        reader.open()
    except Exception as exc:  # rosbags raises several unrelated types for damaged bags
        with contextlib.suppress(Exception):
            reader.close()
        files = bag_files(path) if path.is_dir() else [path]
        why = next((p for f in files if (p := _file_problem(f, path))), None)
        raise BagError(f"cannot open bag {path}: {why or _first_line(exc, 300)}") from exc
    try:
        yield reader
    finally:
        with contextlib.suppress(Exception):
            reader.close()


def bags_in_folder(folder: Path) -> list[Path]:
    """The bags directly inside ``folder``: ``*.bag``, ``*.mcap`` and ``*.db3`` files and folders
    holding metadata.yaml (rosbags reads a single ROS 2 storage file without its metadata.yaml)."""
    found = [
        p
        for p in folder.iterdir()
        if (p.is_file() and p.suffix in _SUFFIX_KIND) or (p.is_dir() and (p / ROS2_METADATA).is_file())
    ]
    return sorted(found)


def not_a_bag_message(folder: Path) -> str:
    """Why a folder without metadata.yaml is not a bag, and which bags it holds (the likely intent)."""
    inside = bags_in_folder(folder)
    if not inside:
        return (
            f"{folder} is a folder but not a ROS 2 bag (no {ROS2_METADATA}) and holds no bags "
            f"(*.bag files or folders with {ROS2_METADATA})"
        )
    names = ", ".join(p.name for p in inside[:10])
    if len(inside) > 10:
        names += f" and {len(inside) - 10} more"
    split = (
        f" (if the storage files are the parts of one recording, `ros2 bag reindex {folder}` "
        f"rebuilds its {ROS2_METADATA})"
        if all(p.suffix in (".mcap", ".db3") for p in inside)
        else ""
    )
    return (
        f"{folder} is a folder of {len(inside)} bag(s), not a bag (no {ROS2_METADATA}): {names}; "
        f"pass the bags themselves, e.g. {folder}/*{split}"
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


def stream_format(msg: Any) -> str:
    """A video packet message's codec text: CompressedVideo ``format`` or FFMPEGPacket ``encoding``."""
    return str(msg.format if hasattr(msg, "format") else msg.encoding)


def header_stamp_ns(msg: Any) -> int:
    """A message's header stamp in ns (0 when the publisher never set it); CompressedVideo's ``timestamp``."""
    stamp = msg.header.stamp if hasattr(msg, "header") else msg.timestamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def topic_table(reader: Any) -> dict[str, tuple[str, int]]:
    """topic -> (message type, message count) over all connections of an open reader."""
    out: dict[str, tuple[str, int]] = {}
    for conn in reader.connections:
        msgtype, count = out.get(conn.topic, (conn.msgtype, 0))
        out[conn.topic] = (msgtype, count + (conn.msgcount or 0))
    return out


def is_image_type(msgtype: str) -> bool:
    """True for sensor_msgs Image / CompressedImage, also when written without ``/msg/``."""
    return normalize_msgtype(msgtype) in IMAGE_TYPES


def describe_topics(reader: Any) -> str:
    """'/a (sensor_msgs/msg/Image), /b (...)' for error messages."""
    return ", ".join(f"{t} ({m})" for t, (m, _) in sorted(topic_table(reader).items())) or "(none)"
