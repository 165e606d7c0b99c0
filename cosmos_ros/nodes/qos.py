"""QoS profiles used by the nodes, chosen from parameter strings.

Cameras usually publish best-effort ("sensor data"); a best-effort subscription matches both
best-effort and reliable publishers, so it is the safe default for camera input. Previews are
published RELIABLE + TRANSIENT_LOCAL depth 1: RViz's Image display subscribes reliable by
default (a best-effort preview shows "no image"), and a viewer that starts late still gets the
last frame.
"""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
    qos_profile_system_default,
)

#: Names accepted by the ``*_qos`` parameters.
QOS_NAMES = ("sensor_data", "reliable", "best_effort", "system_default")


def camera_qos(name: str = "sensor_data", depth: int = 5) -> QoSProfile:
    """The subscription profile for camera topics, from a ``camera_qos`` parameter value."""
    if depth < 1:
        raise ValueError(f"QoS depth must be >= 1, got {depth}")
    if name == "sensor_data":
        profile = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=depth,
            reliability=qos_profile_sensor_data.reliability,
            durability=qos_profile_sensor_data.durability,
        )
    elif name == "reliable":
        profile = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE
        )
    elif name == "best_effort":
        profile = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT
        )
    elif name == "system_default":
        profile = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=depth,
            reliability=qos_profile_system_default.reliability,
            durability=qos_profile_system_default.durability,
        )
    else:
        raise ValueError(f"unknown QoS name {name!r}; accepted: {', '.join(QOS_NAMES)}")
    return profile


def preview_qos(depth: int = 1) -> QoSProfile:
    """RELIABLE + TRANSIENT_LOCAL, depth 1: what RViz needs and what late viewers want."""
    if depth < 1:
        raise ValueError(f"QoS depth must be >= 1, got {depth}")
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


def recorder_qos(depth: int = 100) -> QoSProfile:
    """For a subscriber that must see every preview frame (a recorder, a test, the demo).

    It matches the preview publishers (the same profile) but keeps ``depth`` samples on the
    reader side, so frames that arrive while its callbacks are busy wait instead of replacing
    each other as they would in a depth-1 viewer such as RViz.
    """
    return preview_qos(depth)


def playback_qos(depth: int = 10) -> QoSProfile:
    """What the bag player publishes with: reliable, so both reliable and best-effort readers match."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE)
