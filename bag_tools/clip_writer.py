"""Run clip-writing jobs in one background thread, in order, behind a bounded queue.

Why: fitting frames (OpenCV resize) and H.264 encoding (PyAV/libx264) release the GIL, so a
writer thread lets them run while the reading thread reads and deserializes the next messages.
The queue holds at most ``max_pending`` jobs, so a fast reader waits instead of piling up
frames: memory stays bounded whatever the bag size.

Jobs run one at a time in submission order (so results come out in the same order as a
single-threaded run). The first job that fails stops all later jobs, and its exception is raised
in the submitting thread at the next :meth:`submit` or at :meth:`close`. Jobs write their files
through ``cosmos_ros.atomic``, so a failure never leaves a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from types import TracebackType

Job = Callable[[], None]


class BackgroundWriter:
    """A single writer thread fed through a bounded queue; use it as a context manager."""

    def __init__(self, max_pending: int = 1, name: str = "clip-writer") -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def error(self) -> BaseException | None:
        """The exception of the job that failed, if one did."""
        return self._error

    def submit(self, job: Job) -> None:
        """Queue ``job``; waits while the queue is full; raises an earlier job's error."""
        self._raise_error()
        self._jobs.put(job)

    def close(self, cancel: bool = False) -> None:
        """Finish the queued jobs (or drop them when ``cancel``), stop the thread, raise any error."""
        if cancel:
            self._cancelled.set()
        self._jobs.put(None)
        self._thread.join()
        self._raise_error()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
            return
        # The reader failed: finish complete clips already queued (as a single-threaded run would
        # have written them) unless the process is being interrupted; the reader's error wins.
        interrupted = not issubclass(exc_type, Exception)
        with contextlib.suppress(Exception):
            self.close(cancel=interrupted)

    def _run(self) -> None:
        # Keep taking jobs after an error or a cancel, so a waiting submit() never blocks forever.
        while (job := self._jobs.get()) is not None:
            if self._error is not None or self._cancelled.is_set():
                continue
            try:
                job()
            except BaseException as exc:  # handed to the submitting thread
                self._error = exc

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error
