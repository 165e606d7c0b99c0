"""bags convert / validate / inspect / synth refuse bad input up front and say what is accepted.

Each test runs the real CLI or library on small real bags written with rosbags.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from bags_helpers import TARGET, cli, make_bag
from cosmos_ros.bag_tools.convert import STATE_DIR, ConvertConfig, ConvertError, convert_bag, convert_bags
from cosmos_ros.bag_tools.dataset_format import DatasetFormatError, load_dataset
from cosmos_ros.bag_tools.readers import BagError, bag_sha256
from cosmos_ros.bag_tools.validate import check_dataset, validate_dataset

from cosmos_ros.progress import ProgressEvent

CONFIG = {"clip_frames": 9, "height": 32, "width": 48, "prompt": "p"}


def test_an_interrupted_conversion_is_refused_until_it_is_resumed(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, "long", frames=120)
    out = tmp_path / "ds"

    def interrupt(event: ProgressEvent) -> None:
        if event.step >= 64:  # a few clips are written by then
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert_bags([bag], out, ConvertConfig(**CONFIG), progress=interrupt)
    assert list((out / "videos").glob("*.mp4")) and list((out / "metas").glob("*.txt"))
    assert (out / STATE_DIR).is_dir() and not (out / "manifest.jsonl").exists()
    with pytest.raises(DatasetFormatError, match=r"interrupted conversion \(no manifest\.jsonl"):
        load_dataset(out)  # the trainer's reader: not the plain videos/ + metas/ layout
    result = cli("bags", "validate", str(out))
    assert result.returncode == 1 and "OK" not in result.stdout
    assert "interrupted conversion" in result.stderr and "--resume" in result.stderr
    assert "--overwrite" in result.stderr

    args = ["bags", "convert", str(bag), "-o", str(out), *TARGET, "--prompt", "p"]
    assert cli(*args, "--resume").returncode == 0
    assert validate_dataset(out) == []
    # Killed between manifest.jsonl and dataset.yaml: still unfinished.
    (out / "dataset.yaml").unlink()
    with pytest.raises(DatasetFormatError, match=r"no dataset\.yaml"):
        load_dataset(out)


def test_sizes_the_model_cannot_take_are_refused_up_front(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, "a")
    out = tmp_path / "ds"
    result = cli("bags", "convert", str(bag), "-o", str(out), "--resolution", "65x97", "--prompt", "p")
    assert result.returncode == 1 and not out.exists()
    assert "65x97 (HEIGHTxWIDTH)" in result.stderr and "multiples of 16" in result.stderr
    assert "nearest: 64x96" in result.stderr
    with pytest.raises(ConvertError, match="width 40 is not a positive multiple of 16"):
        ConvertConfig(height=32, width=40).check()


def test_missing_bags_are_named_before_anything_is_created(tmp_path: Path) -> None:
    good = make_bag(tmp_path, "good")
    out = tmp_path / "dsx"
    alone = cli("bags", "convert", str(tmp_path / "nope"), "-o", str(out), "--prompt", "x")
    assert alone.returncode == 1 and "nope" in alone.stderr and not out.exists()
    nope, nope2 = tmp_path / "nope", tmp_path / "nope2"
    mixed = cli("bags", "convert", str(nope), str(good), str(nope2), "-o", str(out), "--prompt", "x")
    assert mixed.returncode == 1 and not out.exists()
    assert f"not found: {nope}, {nope2};" in mixed.stderr and str(good) not in mixed.stderr
    # Nothing was left behind, so the same output folder works at once.
    assert cli("bags", "convert", str(good), "-o", str(out), *TARGET, "--prompt", "x").returncode == 0


def test_a_bag_that_was_not_read_gets_no_hash(tmp_path: Path) -> None:
    with pytest.raises(BagError, match="not found"):
        bag_sha256(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="empty folder"):
        bag_sha256(tmp_path / "empty")
    result = convert_bag(tmp_path / "nope", tmp_path / "ds", ConvertConfig(**CONFIG))
    assert result.error and "nope" in result.error and result.sha256 == ""


def test_validate_warns_about_failed_bags(tmp_path: Path) -> None:
    good = make_bag(tmp_path, "good")
    other = make_bag(tmp_path, "other", topics=("/elsewhere",))
    out = tmp_path / "ds"
    convert_bags([good, other], out, ConvertConfig(topics=["/camera/image_raw"], **CONFIG))
    checked = check_dataset(out)
    assert checked.problems == [] and len(checked.warnings) == 1
    assert str(other) in checked.warnings[0] and "'/camera/image_raw' not found" in checked.warnings[0]
    result = cli("bags", "validate", str(out))
    assert result.returncode == 0 and "OK with 1 warning(s)" in result.stdout
    assert "warning:" in result.stderr and "other failed to convert" in result.stderr


def test_config_values_of_the_wrong_type_name_the_key_and_file(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, "a")
    config_file = tmp_path / "c.yaml"
    config_file.write_text(yaml.safe_dump({"clip_frames": "nine", "allow_empty_prompt": "yes"}))
    result = cli("bags", "convert", str(bag), "-o", str(tmp_path / "ds"), "--config", str(config_file))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert str(config_file) in result.stderr
    assert "clip_frames: 'nine' is not accepted; expected an integer" in result.stderr
    assert "allow_empty_prompt: 'yes' is not accepted; expected true or false" in result.stderr
    with pytest.raises(ConvertError, match="fps: 'fast' is not accepted; expected a number"):
        ConvertConfig(fps="fast").check()  # type: ignore[arg-type]


def test_inspect_prints_height_by_width_and_takes_a_folder_of_bags(tmp_path: Path) -> None:
    folder = tmp_path / "bags"
    folder.mkdir()
    make_bag(folder, "r1", "ros1", height=48, width=80)
    make_bag(folder, "r2", height=48, width=80)
    table = cli("bags", "inspect", str(folder))
    assert table.returncode == 0, table.stderr
    assert table.stdout.count("48x80 (HxW) rgb8") == 2 and "r1.bag" in table.stdout
    assert "folder of 2 bag(s)" in table.stderr
    data = json.loads(cli("bags", "inspect", str(folder / "r2"), "--json").stdout)
    camera = next(t for t in data["bags"][0]["topics"] if t["topic"] == "/camera/image_raw")
    assert (camera["image_size"], camera["image_height"], camera["image_width"]) == ("48x80", 48, 80)
    convert = cli("bags", "convert", str(folder), "-o", str(tmp_path / "ds"), "--prompt", "p")
    assert convert.returncode == 1 and "folder of 2 bag(s), not a bag" in convert.stderr
    assert "r1.bag, r2" in convert.stderr and not (tmp_path / "ds").exists()


def test_workers_out_of_range_are_refused(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, "a")
    for value in ("0", "-2"):
        result = cli("bags", "convert", str(bag), "-o", str(tmp_path / "ds"), "--workers", value)
        assert result.returncode == 2 and "--workers: must be an integer >= 1" in result.stderr
    with pytest.raises(ConvertError, match="workers must be an integer >= 1"):
        convert_bags([bag], tmp_path / "ds", ConvertConfig(**CONFIG), workers=0)
    assert not (tmp_path / "ds").exists()


def test_synth_infers_ros1_from_a_bag_name_and_refuses_a_mismatch(tmp_path: Path) -> None:
    small = ["--frames", "5", "--height", "32", "--width", "48"]
    result = cli("bags", "synth", str(tmp_path / "x.bag"), *small)
    assert result.returncode == 0 and "wrote ros1 bag" in result.stdout
    assert (tmp_path / "x.bag").is_file()
    mismatch = cli("bags", "synth", str(tmp_path / "y.bag"), "--format", "mcap", *small)
    assert mismatch.returncode == 1 and "--format ros1" in mismatch.stderr
    assert not (tmp_path / "y.bag").exists()
    unnamed = cli("bags", "synth", str(tmp_path / "z"), "--format", "ros1", *small)
    assert unnamed.returncode == 1 and "z.bag" in unnamed.stderr


def test_a_prompt_map_that_misses_the_bag_says_so(tmp_path: Path) -> None:
    a = make_bag(tmp_path, "a", prompt=None)
    b = make_bag(tmp_path, "b", prompt=None)
    mapping = tmp_path / "prompts.yaml"
    mapping.write_text(yaml.safe_dump({"a": "stack the cups", "c": "unused"}))
    out = tmp_path / "ds"
    result = cli("bags", "convert", str(a), str(b), "-o", str(out), *TARGET, "--prompt-map", str(mapping))
    assert result.returncode == 1
    assert f"no key of --prompt-map {mapping} matched the bag" in result.stderr
    assert "'a', 'c'" in result.stderr and "name or stem" in result.stderr and "'b'" in result.stderr
    assert {c.prompt for c in load_dataset(out).clips} == {"stack the cups"}


def test_bags_too_short_for_one_clip_are_an_error_that_says_what_a_clip_needs(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, "short", frames=10)  # 10 frames at 30 fps: 0.33 s
    result = cli("bags", "convert", str(bag), "-o", str(tmp_path / "ds"), *TARGET, "--prompt", "p")
    assert result.returncode == 1
    assert "no clip could be cut: each needs 9 frames at 16 fps, i.e. 0.6 s" in result.stderr


@pytest.mark.parametrize(("flag", "value"), [("--frames", "0"), ("--height", "-4"), ("--fps", "0")])
def test_synth_refuses_sizes_and_rates_that_are_not_positive(tmp_path: Path, flag: str, value: str) -> None:
    result = cli("bags", "synth", str(tmp_path / "b"), flag, value)
    assert result.returncode == 2 and f"argument {flag}: must be" in result.stderr
    assert not (tmp_path / "b").exists()
