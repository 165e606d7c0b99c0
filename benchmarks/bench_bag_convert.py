"""Benchmark: bag conversion frames/s vs the raw read + decode rate of the same bag, and peak RSS
for a small and a 4x larger bag (targets: >= 0.8 of the raw rate with one worker; flat RSS).

    python benchmarks/bench_bag_convert.py [--frames 300] [--height 480 --width 640] [--encoding rgb8]

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
            raw_fps, conv_fps = raw["frames"] / raw["seconds"], conv["frames"] / conv["seconds"]
            rows.append(
                {
                    "bag_frames": raw["frames"],
                    "raw_read_decode_fps": round(raw_fps, 1),
                    "convert_fps": round(conv_fps, 1),
                    "ratio": round(conv_fps / raw_fps, 3),
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


if __name__ == "__main__":
    main()
