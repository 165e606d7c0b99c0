"""Which ``predict_video`` goals the generation node takes, and in what order: the busy policy.

Plain Python (no rclpy) so the rules are readable in one place and testable without DDS. The
node asks :meth:`GoalAdmission.request` from its action goal callback, so a goal the node cannot
serve is REJECTED there, as Nav2's lifecycle servers and llama_ros do, instead of being accepted
and then aborted. A rejection carries no reason over the wire, so the reason is returned for the
node to log and kept in :attr:`GoalAdmission.last_rejection` for ``/diagnostics``.

Busy policies (parameter ``busy_policy``) for a goal that arrives while one runs:

- ``reject``: reject it; one generation at a time, nothing waits.
- ``queue``: accept it while fewer than ``max_queued_goals`` wait; they run in arrival order.
- ``preempt``: accept it and stop the running goal (and any waiting ones) within a denoising
  step; they end ABORTED naming the goal that preempted them, like a Nav2 preemption.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BUSY_POLICIES = ("reject", "queue", "preempt")


@dataclass
class Job:
    """An accepted goal: its handle, its stop signal and why the node (not the client) stopped it."""

    handle: Any  # rclpy.action.server.ServerGoalHandle
    cancel: threading.Event
    accepted_at: float
    last_step: int = 0  # denoising steps finished so far
    cancel_step: int | None = None  # last_step when the cancel or stop arrived
    stop_reason: str | None = None  # set when the node stops it: deactivation, shutdown, preemption

    @property
    def goal_id(self) -> bytes:
        return self.handle.goal_id.uuid.tobytes()

    @property
    def short_id(self) -> str:
        return self.goal_id.hex()[:8]

    def stop(self, reason: str) -> None:
        """Ask the job to stop between steps; the first reason given is the one reported."""
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.cancel_step is None:
            self.cancel_step = self.last_step
        self.cancel.set()


class GoalAdmission:
    """One running goal, the goals waiting behind it and the goals accepted but not yet executing.

    The goal callback reserves a place (:meth:`request`) so two goals arriving together cannot
    both be accepted for one free place; the execute callback then takes its turn
    (:meth:`wait_turn`) and gives it back (:meth:`finish`).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.running: Job | None = None
        self.queue: deque[Job] = deque()
        self._reserved = 0  # accepted by the goal callback, execute callback not started yet
        self.last_rejection = ""
        self.last_rejection_time = 0.0  # time.time() of the last rejection (0 = none yet)

    def _occupied(self) -> int:
        return (self.running is not None) + len(self.queue) + self._reserved

    def request(self, inactive_reason: str | None, policy: str, max_queued: int) -> str | None:
        """Decide on a new goal (from the goal callback): None accepts it, a string is why it is rejected."""
        with self._cond:
            occupied = self._occupied()
            reason = inactive_reason
            if reason is None and occupied and policy == "reject":
                reason = (
                    "busy: a generation is running (busy_policy=reject); retry when it ends, or set "
                    "busy_policy to queue or preempt"
                )
            elif reason is None and policy == "queue" and occupied >= 1 + max_queued:
                reason = (
                    f"busy: a generation is running and {occupied - 1} goal(s) wait "
                    f"(busy_policy=queue, max_queued_goals={max_queued}); retry later"
                )
            if reason is None:
                self._reserved += 1
                return None
            self.last_rejection, self.last_rejection_time = reason, time.time()
            return reason

    def wait_turn(
        self,
        job: Job,
        inactive_reason: Callable[[], str | None],
        preempt: bool,
        on_queued: Callable[[], None],
    ) -> str | None:
        """Block until ``job`` may run (it is then :attr:`running`); a string says why it may not.

        With ``preempt`` the running and waiting goals are stopped first. ``on_queued()`` is
        called once if the job has to wait (the ``queued`` feedback).
        """
        with self._cond:
            self._reserved = max(0, self._reserved - 1)
            reason = inactive_reason()
            if reason is not None:
                self._cond.notify_all()
                return reason
            if preempt:
                for other in [*([self.running] if self.running else []), *self.queue]:
                    other.stop(f"preempted by goal {job.short_id} (busy_policy=preempt)")
            self.queue.append(job)
            if self.running is not None or len(self.queue) > 1:
                on_queued()
            while self.running is not None or self.queue[0] is not job:
                if job.cancel.is_set() or job.handle.is_cancel_requested:
                    self.queue.remove(job)
                    self._cond.notify_all()
                    return job.stop_reason or "cancelled while queued"
                self._cond.wait(0.1)
            self.queue.popleft()
            if job.cancel.is_set():  # stopped in the instant its turn came
                self._cond.notify_all()
                return job.stop_reason or "cancelled while queued"
            self.running = job
            return None

    def finish(self, job: Job) -> None:
        """The running job is done (any outcome): the next one may start."""
        with self._cond:
            if self.running is job:
                self.running = None
            self._cond.notify_all()

    def cancel(self, goal_id: bytes) -> None:
        """A client asked to cancel this goal: stop it between steps (or take it out of the queue)."""
        with self._cond:
            for job in [*([self.running] if self.running else []), *self.queue]:
                if job.goal_id == goal_id:
                    if job.cancel_step is None:
                        job.cancel_step = job.last_step
                    job.cancel.set()
            self._cond.notify_all()

    def stop_all(self, reason: str, timeout: float = 30.0) -> bool:
        """Stop every running and waiting goal with ``reason``; wait until they ended (False: timed out)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            for job in [*([self.running] if self.running else []), *self.queue]:
                job.stop(reason)
            self._cond.notify_all()
            while self.running is not None or self.queue:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(0.1, left))
        return True

    def snapshot(self) -> dict[str, Any]:
        """Counts for ``/diagnostics``."""
        with self._cond:
            return {"running": self.running is not None, "queued": len(self.queue)}
