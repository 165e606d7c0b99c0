"""Which generation node a capture node sends its next goal to: the fleet's selection rules.

Plain Python (no rclpy) so the rules are readable in one place and testable without DDS. A fleet
is several generation nodes (one per GPU, each in its own namespace) found through plain ROS 2
discovery; there is no central scheduler, so each capture node ranks the generators it can see
and tries them in order, moving on when one rejects the goal (generation_node rejects goals while
busy, see goal_admission.py). The ranking prefers, in this order:

1. generators this capture node has no goal in flight with;
2. generators not lost recently (one that went down mid-goal is tried last for a while);
3. generators whose ``/diagnostics`` do not say ``busy`` (another robot's goal runs there);
4. when the goal names an adapter, generators whose ``/diagnostics`` say it is the active one
   (no adapter switch); generators that report nothing are neither preferred nor skipped;
5. the one used longest ago (round robin, so idle generators share the load).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

#: The ROS type name of the generation node's action, as the graph reports it.
PREDICT_VIDEO_TYPE = "cosmos_ros_interfaces/action/PredictVideo"

#: Status names generation_node publishes on /diagnostics start with this, then its full name.
STATUS_PREFIX = "cosmos_ros: "


def discovered_generators(names_and_types: list[tuple[str, list[str]]]) -> list[str]:
    """The PredictVideo action names in ``rclpy.action.get_action_names_and_types`` output, sorted."""
    return sorted(name for name, types in names_and_types if PREDICT_VIDEO_TYPE in types)


def namespace_of(name: str) -> str:
    """``/gpu0/predict_video`` -> ``/gpu0``; ``/predict_video`` -> ``/`` (an action's or a node's)."""
    head = name.rsplit("/", 1)[0]
    return head or "/"


def holds(active: str, wanted: str) -> bool:
    """Whether a generator's active adapter is the wanted one (``name`` fits ``name@3`` too)."""
    return active == wanted or ("@" not in wanted and active.split("@", 1)[0] == wanted)


@dataclass
class GeneratorState:
    """What this capture node knows of one generator (all times are ``time.monotonic()``)."""

    name: str
    in_flight: int = 0  # goals of this node it serves now
    last_used: float = 0.0
    lost_at: float = 0.0  # when it last went down mid-goal (0 = never)
    busy: bool | None = None  # from /diagnostics (None = not reported)
    adapter: str = ""  # active adapter from /diagnostics ("" = not reported)
    reported_at: float = 0.0


class GeneratorPool:
    """The generators a capture node may use, and the order to try them in for a goal.

    ``names`` are fixed action names; with ``discover`` the names seen in the graph are added
    (:meth:`set_discovered`). ``status_max_age`` is how long a ``/diagnostics`` report counts;
    ``lost_penalty`` is how long a generator that went down is tried last. Thread safe: goals
    run on several executor threads.
    """

    def __init__(
        self,
        names: list[str],
        discover: bool = False,
        status_max_age: float = 5.0,
        lost_penalty: float = 30.0,
    ) -> None:
        if not names and not discover:
            raise ValueError("a generator pool needs generator names or discovery, got neither")
        bad = [n for n in names if not n.startswith("/")]
        if bad:
            raise ValueError(f"generator names must be absolute action names, got {bad!r}")
        self.fixed = list(dict.fromkeys(names))
        self.discover = discover
        self.status_max_age = status_max_age
        self.lost_penalty = lost_penalty
        self._discovered: list[str] = []
        self._state: dict[str, GeneratorState] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Every generator known now: the fixed ones, then the discovered ones."""
        with self._lock:
            return list(dict.fromkeys([*self.fixed, *self._discovered]))

    def set_discovered(self, names: list[str]) -> None:
        """Replace the discovered generators (ignored without ``discover``)."""
        if self.discover:
            with self._lock:
                self._discovered = list(names)

    def _get(self, name: str) -> GeneratorState:
        return self._state.setdefault(name, GeneratorState(name))

    def note_status(self, node_name: str, busy: bool, adapter: str, now: float | None = None) -> None:
        """A generation node's /diagnostics report; it applies to the generators in its namespace."""
        now = time.monotonic() if now is None else now
        namespace = namespace_of(node_name)
        with self._lock:
            for name in [*self.fixed, *self._discovered]:
                if namespace_of(name) == namespace:
                    state = self._get(name)
                    state.busy, state.adapter, state.reported_at = busy, adapter, now

    def order(self, available: list[str], adapter: str = "", now: float | None = None) -> list[str]:
        """``available`` generators, best first (see the module docstring for the rules)."""
        now = time.monotonic() if now is None else now
        with self._lock:

            def key(name: str) -> tuple[bool, bool, bool, bool, float]:
                s = self._get(name)
                fresh = s.reported_at > 0 and now - s.reported_at <= self.status_max_age
                wrong_adapter = bool(adapter) and fresh and bool(s.adapter) and not holds(s.adapter, adapter)
                return (
                    s.in_flight > 0,
                    s.lost_at > 0 and now - s.lost_at < self.lost_penalty,
                    fresh and bool(s.busy),
                    wrong_adapter,
                    s.last_used,
                )

            return sorted(dict.fromkeys(available), key=key)

    def started(self, name: str, now: float | None = None) -> None:
        """A goal was accepted by ``name``."""
        with self._lock:
            state = self._get(name)
            state.in_flight += 1
            state.last_used = time.monotonic() if now is None else now

    def tried(self, name: str, now: float | None = None) -> None:
        """``name`` rejected a goal: rank it after the others next time too."""
        with self._lock:
            self._get(name).last_used = time.monotonic() if now is None else now

    def finished(self, name: str, lost: bool = False, now: float | None = None) -> None:
        """A goal on ``name`` ended; ``lost``: because the generator went down."""
        with self._lock:
            state = self._get(name)
            state.in_flight = max(0, state.in_flight - 1)
            if lost:
                state.lost_at = time.monotonic() if now is None else now
                state.busy = None
                state.reported_at = 0.0
