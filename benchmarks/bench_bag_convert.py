"""Benchmark: bag conversion frames/s vs the raw read + decode rate of the same bag and vs the
encoder-only rate of the same output (encoding the converted clips' frames again, nothing else: the
real bound of a converter that must write H.264), and peak RSS for a small and a 4x larger bag
(targets: >= 0.8 of the raw rate with one worker; flat RSS).

    python benchmarks/bench_bag_convert.py [--frames 300] [--height 480 --width 640] [--encoding rgb8] \
        [-o benchmarks/results/bag_convert.json]

Each measurement runs in its own subprocess so its peak RSS (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _raw_read(bag: str) -> dict[str, float]:
    from cosmos_ros.bag_tools.readers import open_bag

    from cosmos_ros.media.ros_image import message_to_rgb

    start, frames = time.monotonic(), 0
    with open_bag(bag) as reader:
        conns = [c for c in reader.connections if c.msgtype.startswith("sensor_msgs/msg/")]
        for conn, _, raw in reader.messages(connections=conns):
            message_to_rgb(reader.deserialize(raw, conn.msgtype))
            frames += 1
    seconds = time.monotonic() - start
    return {"frames": frames, "seconds": seconds}


def _convert(bag: str, out: str, height: str, width: str, clip_frames: str) -> dict[str, float]:
    from cosmos_ros.bag_tools.convert import ConvertConfig, convert_bags

    config = ConvertConfig(clip_frames=int(clip_frames), height=int(height), width=int(width), prompt="bench")
    start = time.monotonic()
    report = convert_bags([bag], out, config)
    return {"frames": report.frames_read, "seconds": time.monotonic() - start, "clips": len(report.clips)}


def _encode_only(dataset: str, out: str) -> dict[str, float]:
    """Seconds to H.264-encode the dataset's clips again (frames decoded beforehand, not timed)."""
    from cosmos_ros.bag_tools.dataset_format import load_dataset

    from cosmos_ros.media.video import read_video, write_video

    clips = load_dataset(dataset).clips
    videos = [(read_video(Path(dataset) / c.video)[0], c.fps) for c in clips]
    start = time.monotonic()
    for i, (frames, fps) in enumerate(videos):
        write_video(Path(out) / f"{i}.mp4", frames, fps)
    return {"frames_encoded": sum(len(v) for v, _ in videos), "seconds": time.monotonic() - start}


def _child(mode: str, *args: str) -> dict[str, float]:
    code = (
        "import json, resource, sys; sys.path.insert(0, 'benchmarks'); import bench_bag_convert as b; "
        f"r = b._{mode}(*{list(args)!r}); "
        "r['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; print(json.dumps(r))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=300, help="frames of the small bag (default: 300)")
    parser.add_argument("--height", type=int, default=480, help="source height (default: 480)")
    parser.add_argument("--width", type=int, default=640, help="source width (default: 640)")
    parser.add_argument("--encoding", default="rgb8", help="source encoding (default: rgb8)")
    parser.add_argument("--target", default="432x768", help="output resolution (default: 432x768)")
    parser.add_argument("--clip-frames", type=int, default=33, help="clip length (default: 33)")
    parser.add_argument("-o", "--output", help="also write the rows as JSON here (default: print only)")
    args = parser.parse_args()
    from cosmos_ros.bag_tools.synthetic import SynthSpec, write_synthetic_bag

    th, tw = (int(v) for v in args.target.split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in (1, 4):
            bag = Path(tmp) / f"bag_x{scale}"
            spec = SynthSpec(
                frames=args.frames * scale, height=args.height, width=args.width, encoding=args.encoding
            )
            write_synthetic_bag(bag, spec, "mcap")
            raw = _child("raw_read", str(bag))
            conv = _child(
                "convert", str(bag), str(Path(tmp) / f"ds_x{scale}"), str(th), str(tw), str(args.clip_frames)
            )
            encoded = Path(tmp) / f"enc_x{scale}"
            encoded.mkdir()
            enc = _child("encode_only", str(Path(tmp) / f"ds_x{scale}"), str(encoded))
            raw_fps, conv_fps = raw["frames"] / raw["seconds"], conv["frames"] / conv["seconds"]
            enc_fps = conv["frames"] / enc["seconds"]  # source frames/s if encoding were all the work
            rows.append(
                {
                    "bag_frames": raw["frames"],
                    "raw_read_decode_fps": round(raw_fps, 1),
                    "convert_fps": round(conv_fps, 1),
                    "ratio": round(conv_fps / raw_fps, 3),
                    "encode_only_fps": round(enc_fps, 1),
                    "ratio_to_encode_only": round(conv_fps / enc_fps, 3),
                    "frames_encoded": enc["frames_encoded"],
                    "clips": conv["clips"],
                    "raw_peak_rss_mb": round(raw["peak_rss_mb"], 1),
                    "convert_peak_rss_mb": round(conv["peak_rss_mb"], 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print(
        f"source {args.height}x{args.width} {args.encoding} mcap -> {args.target}, "
        f"{args.clip_frames}-frame clips"
    )
    growth = rows[1]["convert_peak_rss_mb"] - rows[0]["convert_peak_rss_mb"]
    print(f"convert peak RSS growth, small -> 4x bag: {growth:+.1f} MB")
    if args.output:
        import common

        settings = {
            k: getattr(args, k) for k in ("frames", "height", "width", "encoding", "target", "clip_frames")
        }
        results = {"benchmark": "bag_convert", "settings": settings, "rows": rows}
        common.write_results(args.output, {**results, "environment": common.environment()})


if __name__ == "__main__":
    main()
