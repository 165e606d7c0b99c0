"""bags inspect / convert on bags as robots really record them (issue 17, points 1-5 and 7).

Every bag here is written with rosbags' writers the way other recorders write them: a ROS 2 folder
named ``*.bag``, service event topics whose definitions rosbags cannot parse, an md5 mismatch on
an unrelated ROS 1 topic, ``sensor_msgs/Image`` without ``/msg/``, header stamps of 0, a
metadata.yaml that disagrees with its storage file, empty bags and bare mcap files.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from bags_helpers import TARGET, cli, make_bag
from cosmos_ros.bag_tools.convert import ConvertConfig, ConvertError, convert_bags
from cosmos_ros.bag_tools.dataset_format import load_dataset
from cosmos_ros.bag_tools.synthetic import pattern_frame

IMAGE = "sensor_msgs/msg/Image"
START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 33_333_333  # 30 fps
#: What `ros2 bag record -a` on Jazzy writes for a service's events (rosbags cannot parse "---").
SERVICE_EVENT_DEF = (
    "service_msgs/ServiceEventInfo info\nBasicTypes_Request[<=1] request\n"
    "BasicTypes_Response[<=1] response\n" + "=" * 80 + "\nMSG: test_msgs/srv/BasicTypes\n"
    "bool bool_value\n---\nbool bool_value\n"
)


def _image(store: object, index: int, stamp_ns: int, ros1: bool = False) -> object:
    """A 64x96 rgb8 test-pattern Image with the given header stamp."""
    types = store.types  # type: ignore[attr-defined]
    stamp = types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    header_kwargs = {"seq": index} if ros1 else {}
    header = types["std_msgs/msg/Header"](stamp=stamp, frame_id="cam", **header_kwargs)
    rgb = pattern_frame(index, 64, 96)
    return types[IMAGE](
        header=header, height=64, width=96, encoding="rgb8", is_bigendian=0, step=288, data=rgb.reshape(-1)
    )


def write_ros2(
    path: Path,
    *,
    frames: int = 40,
    camera_type: str = IMAGE,
    zero_stamps: Sequence[int] = (),
    extra: Sequence[tuple[str, str, str]] = (),
    storage: str = "mcap",
) -> Path:
    """A ROS 2 bag: /camera/image_raw (declared as ``camera_type``) plus ``extra`` topics
    (topic, type, definition) carrying bytes nobody decodes; frames in ``zero_stamps`` have
    header stamp 0."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        msgdef, _ = store.generate_msgdef(IMAGE, ros_version=2)
        camera = writer.add_connection(
            "/camera/image_raw", camera_type, msgdef=msgdef, rihs01=store.hash_rihs01(IMAGE)
        )
        others = [
            writer.add_connection(topic, msgtype, msgdef=definition, rihs01="RIHS01_" + "0" * 64)
            for topic, msgtype, definition in extra
        ]
        for i in range(frames):
            stamp = START_NS + i * PERIOD_NS
            msg = _image(store, i, 0 if i in zero_stamps else stamp)
            writer.write(camera, stamp + 5_000_000, store.serialize_cdr(msg, IMAGE))
            for conn in others:
                writer.write(conn, stamp + 1, b"\x00\x01\x00\x00" + bytes(16))
    return path


def _convert(bag: Path, out: Path, *flags: str) -> object:
    return cli("bags", "convert", str(bag), "-o", str(out), *TARGET, "--prompt", "p", *flags)


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("cosmos-ros: error")]


# --- point 1 --------------------------------------------------------------------------------


def test_a_ros2_bag_folder_named_dot_bag_is_read_as_ros2(tmp_path: Path) -> None:
    bag = write_ros2(tmp_path / "run1.bag")  # `ros2 bag record -o run1.bag`
    info = json.loads(cli("bags", "inspect", str(bag), "--json").stdout)["bags"][0]
    assert info["format"] == "mcap" and info["suggested_camera"] == "/camera/image_raw"
    result = _convert(bag, tmp_path / "ds")
    assert result.returncode == 0, result.stderr
    assert len(load_dataset(tmp_path / "ds").clips) == 2


# --- point 2 --------------------------------------------------------------------------------


def test_service_event_topics_are_skipped_with_a_warning_and_the_camera_converts(tmp_path: Path) -> None:
    events = [
        ("/add/_service_event", "test_msgs/srv/BasicTypes_Event", SERVICE_EVENT_DEF),
        ("/reset/_service_event", "test_msgs/srv/Empty_Event", SERVICE_EVENT_DEF),
    ]
    bag = write_ros2(tmp_path / "jazzy", extra=events)
    out = tmp_path / "ds"
    result = _convert(bag, out)
    assert result.returncode == 0, result.stderr
    assert len(load_dataset(out).clips) == 2
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and "Traceback" not in result.stderr
    assert "/add/_service_event (test_msgs/srv/BasicTypes_Event" in warnings[0]
    assert "cannot be parsed" in warnings[0] and "'---'" in warnings[0]
    assert "bool_value" not in result.stderr, "the whole schema was printed"
    report = yaml.safe_load((out / "dataset.yaml").read_text())["report"]["bags"][0]
    assert any("/reset/_service_event" in w for w in report["warnings"])

    table = cli("bags", "inspect", str(bag))
    assert table.returncode == 0 and "suggested camera topic: /camera/image_raw" in table.stdout
    assert "/add/_service_event" in table.stdout and "UNREADABLE" in table.stdout

    # Asking for the unreadable topic itself is a one-line error naming it.
    asked = _convert(bag, tmp_path / "ds2", "--topic", "/add/_service_event")
    assert asked.returncode == 1 and not (tmp_path / "ds2").exists()
    assert len(_errors(asked.stderr)) == 1 and "/add/_service_event" in _errors(asked.stderr)[0]
    assert "cannot be parsed" in asked.stderr


def test_a_ros1_hash_mismatch_on_another_topic_skips_only_that_topic(tmp_path: Path) -> None:
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    bag = tmp_path / "r1.bag"
    with Writer(bag) as writer:
        camera = writer.add_connection("/camera/image_raw", IMAGE, typestore=store)
        status = writer.add_connection(
            "/status", "custom_msgs/msg/Status", msgdef="int32 code\n", md5sum="0" * 32
        )
        for i in range(40):
            stamp = START_NS + i * PERIOD_NS
            writer.write(camera, stamp, store.serialize_ros1(_image(store, i, stamp, ros1=True), IMAGE))
            writer.write(status, stamp, b"\x00\x00\x00\x00")
    result = _convert(bag, tmp_path / "ds")
    assert result.returncode == 0, result.stderr
    assert len(load_dataset(tmp_path / "ds").clips) == 2
    assert "warning:" in result.stderr and "/status (custom_msgs/msg/Status" in result.stderr
    assert "hash" in result.stderr


# --- point 3 --------------------------------------------------------------------------------


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_an_image_type_written_without_msg_is_an_image(tmp_path: Path, storage: str) -> None:
    bag = write_ros2(tmp_path / "old", camera_type="sensor_msgs/Image", storage=storage)
    info = json.loads(cli("bags", "inspect", str(bag), "--json").stdout)["bags"][0]
    assert info["suggested_camera"] == "/camera/image_raw"
    assert info["topics"][0]["image_size"] == "64x96"
    result = _convert(bag, tmp_path / "ds", "--topic", "/camera/image_raw")
    assert result.returncode == 0, result.stderr
    assert len(load_dataset(tmp_path / "ds").clips) == 2


# --- point 4 --------------------------------------------------------------------------------


def test_a_run_that_cuts_no_clip_leaves_no_folder_and_says_why(tmp_path: Path) -> None:
    short = make_bag(tmp_path, "short", frames=5)
    out = tmp_path / "ds"
    result = _convert(short, out)
    assert result.returncode == 1 and not out.exists()
    errors = _errors(result.stderr)
    assert len(errors) == 1 and "skipped lines" not in result.stderr
    assert "no clip could be cut" in errors[0] and "5 camera frame(s) over 0.13 s" in errors[0]
    assert "no dataset was written" in errors[0]
    with pytest.raises(ConvertError, match="no clip could be cut"):
        convert_bags([short], out, ConvertConfig(clip_frames=9, height=32, width=48, prompt="p"))
    assert not out.exists()
    # Nothing blocks the next run into the same folder.
    assert _convert(make_bag(tmp_path, "long"), out).returncode == 0


def _edit_metadata(bag: Path, old: str, new: str) -> None:
    meta = bag / "metadata.yaml"
    text = meta.read_text()
    assert old in text
    meta.write_text(text.replace(old, new))


def test_metadata_that_claims_another_type_is_read_as_stored_with_a_warning(tmp_path: Path) -> None:
    bag = write_ros2(tmp_path / "claims")
    _edit_metadata(bag, "type: sensor_msgs/msg/Image", "type: sensor_msgs/msg/CompressedImage")
    result = _convert(bag, tmp_path / "ds")
    assert result.returncode == 0, result.stderr
    assert len(load_dataset(tmp_path / "ds").clips) == 2
    assert "metadata.yaml lists /camera/image_raw as sensor_msgs/msg/CompressedImage" in result.stderr
    assert "holds sensor_msgs/msg/Image messages" in result.stderr


def test_metadata_that_lists_messages_its_files_lack_is_a_clear_error(tmp_path: Path) -> None:
    bag = write_ros2(tmp_path / "renamed")
    _edit_metadata(bag, "name: /camera/image_raw", "name: /front/image_raw")
    out = tmp_path / "ds"
    result = _convert(bag, out)
    assert result.returncode == 1 and not out.exists()
    errors = _errors(result.stderr)
    assert len(errors) == 1 and "skipped lines" not in result.stderr
    assert "'/front/image_raw'" in errors[0] and "counts 40 message(s)" in errors[0]
    assert "ros2 bag reindex" in errors[0]


# --- point 5 --------------------------------------------------------------------------------


def test_header_stamps_of_zero_fall_back_to_receive_time_with_a_warning(tmp_path: Path) -> None:
    bag = write_ros2(tmp_path / "unstamped", zero_stamps=range(40))
    result = _convert(bag, tmp_path / "ds")
    assert result.returncode == 0, result.stderr
    dataset = load_dataset(tmp_path / "ds")
    assert len(dataset.clips) == 2
    assert dataset.clips[0].start_stamp_ns == START_NS + 5_000_000  # the first receive time
    assert "header stamps are 0" in result.stderr and "--time-source receive" in result.stderr


def test_a_few_zero_stamps_inside_a_stamped_stream_are_left_out_and_named(tmp_path: Path) -> None:
    bag = write_ros2(tmp_path / "holes", zero_stamps=(30, 31))
    report = convert_bags(
        [bag], tmp_path / "ds", ConvertConfig(clip_frames=9, height=32, width=48, prompt="p")
    )
    assert len(report.clips) == 2
    notes = report.bags[0].notes
    assert any("2 frame(s) with a header stamp of 0 left out" in n for n in notes), notes
    assert any("--time-source receive" in n for n in notes)


# --- point 7 --------------------------------------------------------------------------------


def test_a_single_bad_bag_is_reported_once_and_says_what_the_file_is(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bag"
    bad.write_text("not a bag at all\n")
    result = _convert(bad, tmp_path / "ds")
    assert result.returncode == 1 and not (tmp_path / "ds").exists()
    assert len(_errors(result.stderr)) == 1 and "still convert" not in result.stderr
    assert result.stderr.count(str(bad)) == 1
    assert "it is a text file (starting 'not a bag at all'), not a ROS 1 bag file" in result.stderr


def test_random_bytes_named_bag_are_described_not_a_codec_error(tmp_path: Path) -> None:
    """Issue 19: ``bags convert rand.bag`` once said "'utf-8' codec can't decode"."""
    bad = tmp_path / "rand.bag"
    bad.write_bytes(bytes(range(256))[::-1] * 8)
    result = _convert(bad, tmp_path / "ds")
    assert result.returncode == 1 and "codec" not in result.stderr and "Traceback" not in result.stderr
    assert f"cannot open bag {bad}: it is unknown data (starting with bytes ff fe fd" in result.stderr


def test_files_that_are_not_what_their_names_say_are_described(tmp_path: Path) -> None:
    ros1 = make_bag(tmp_path, "real", "ros1", frames=3)
    mcap = next(make_bag(tmp_path, "m", frames=3).glob("*.mcap"))
    renamed = tmp_path / "renamed.mcap"
    shutil.copy(ros1, renamed)
    ros1_profile = tmp_path / "profile.mcap"
    ros1_profile.write_bytes(mcap.read_bytes().replace(b"ros2", b"ros1", 1))
    result = cli("bags", "inspect", str(renamed), str(ros1_profile))
    assert result.returncode == 1 and len(_errors(result.stderr)) == 2
    assert (
        "it is a ROS 1 bag file, not an MCAP file as its name says; rename it to renamed.bag" in result.stderr
    )
    assert "it is an MCAP file of profile 'ros1', not a ROS 2 recording" in result.stderr
    assert "magic" not in result.stderr and "Profile is not" not in result.stderr


def test_inspect_a_folder_includes_bare_mcap_files(tmp_path: Path) -> None:
    folder = tmp_path / "bags"
    folder.mkdir()
    make_bag(folder, "r1", "ros1", frames=5)
    source = make_bag(tmp_path, "m", frames=7)
    shutil.copy(next(source.glob("*.mcap")), folder / "bare.mcap")
    table = cli("bags", "inspect", str(folder))
    assert table.returncode == 0, table.stderr
    assert "folder of 2 bag(s)" in table.stderr
    assert "bag: " + str(folder / "bare.mcap") in table.stdout and "r1.bag" in table.stdout
    result = cli("bags", "convert", str(folder / "bare.mcap"), "-o", str(tmp_path / "ds"), *TARGET[:2],
                 "--clip-frames", "1", "--prompt", "p")  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_inspect_json_of_empty_bags_has_no_made_up_times(tmp_path: Path) -> None:
    from rosbags.rosbag1 import Writer as Writer1
    from rosbags.rosbag2 import Writer as Writer2
    from rosbags.typesys import Stores, get_typestore

    with Writer2(tmp_path / "empty2", version=9) as writer:
        writer.add_connection("/camera/image_raw", IMAGE, typestore=get_typestore(Stores.ROS2_HUMBLE))
    with Writer1(tmp_path / "empty1.bag") as writer:
        writer.add_connection("/camera/image_raw", IMAGE, typestore=get_typestore(Stores.ROS1_NOETIC))
    result = cli("bags", "inspect", "--json", str(tmp_path / "empty2"), str(tmp_path / "empty1.bag"))
    assert result.returncode == 0, result.stderr
    for info in json.loads(result.stdout)["bags"]:
        assert (info["start_ns"], info["end_ns"], info["duration_s"]) == (None, None, 0.0)
        assert info["suggested_camera"] is None
