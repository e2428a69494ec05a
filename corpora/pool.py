"""A process pool where one bad task costs one task: time limit, memory limit, crash isolation.

``concurrent.futures`` gives up on the whole pool when one worker dies (``BrokenProcessPool``)
and cannot stop a task that hangs. Here each worker runs one task at a time; the parent
watches every worker:

- a task that runs past ``time_limit_s`` has its worker killed (SIGKILL: a hang inside C++
  code, in symusic or FluidSynth, cannot be interrupted politely) and is reported as a
  :class:`WorkerFailure` ``"Timeout"``;
- a worker that dies (segfault, abort, the kernel's OOM killer) reports its task as a
  ``"WorkerCrash"``;
- either way a fresh worker takes the dead one's place and the batch goes on.

Each worker first calls ``fn.warm_up()`` when ``fn`` has one (its imports), then caps its own
address space (``RLIMIT_AS``) at what it started with plus
``memory_limit_mb``, so a runaway allocation ends in ``MemoryError`` (or a crash) in that
worker, not in the machine swapping. Workers die with the parent (``PR_SET_PDEATHSIG`` on
Linux), so a killed batch leaves nothing running.
"""

from __future__ import annotations

import contextlib
import faulthandler
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait

_RECV_ERRORS = (EOFError, OSError, ConnectionError)


@dataclass(frozen=True)
class PoolLimits:
    """How many workers, and what one task may take.

    Attributes:
        n_workers: worker processes (0: run tasks in this process, with no limits).
        time_limit_s: seconds one task may run before its worker is killed (None: no limit).
        memory_limit_mb: MiB a worker may allocate beyond what it starts with (None: no limit).
    """

    n_workers: int = 1
    time_limit_s: float | None = 120.0
    memory_limit_mb: int | None = 4096

    def __post_init__(self) -> None:
        if not (isinstance(self.n_workers, int) and self.n_workers >= 0):
            raise ValueError(f"n_workers must be an integer >= 0, got {self.n_workers!r}")
        if self.time_limit_s is not None and not self.time_limit_s > 0:
            raise ValueError(f"time_limit_s must be > 0 (or None), got {self.time_limit_s!r}")
        if self.memory_limit_mb is not None and not (isinstance(self.memory_limit_mb, int)
                                                     and self.memory_limit_mb > 0):
            raise ValueError(f"memory_limit_mb must be a positive integer (or None), got {self.memory_limit_mb!r}")


@dataclass(frozen=True)
class WorkerFailure:
    """A task that ended without a result: ``error`` is ``"Timeout"`` or ``"WorkerCrash"``."""

    error: str
    message: str


def _address_space_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _worker_main(conn, fn: Callable, memory_limit_mb: int | None) -> None:
    _die_with_parent()
    faulthandler.disable()  # a crash is reported by the parent in one line, not as a C traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    warm_up = getattr(fn, "warm_up", None)
    if warm_up is not None:   # fn's imports before the cap: the cap measures its work, not its code
        warm_up()
    if memory_limit_mb is not None:
        import resource

        cap = _address_space_bytes() + memory_limit_mb * 1024 * 1024
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    while True:
        try:
            message = conn.recv()
        except _RECV_ERRORS:
            return
        if message is None:
            return
        try:
            reply = (True, fn(message))
        except MemoryError as exc:
            reply = (False, WorkerFailure("MemoryError", str(exc) or "out of memory (over the memory limit)"))
        except Exception as exc:
            reply = (False, WorkerFailure(type(exc).__name__, " ".join(str(exc).split())))
        try:
            conn.send(reply)
        except MemoryError:
            conn.send((False, WorkerFailure("MemoryError", "result too large for the memory limit")))
        except _RECV_ERRORS:
            return


class _Worker:
    def __init__(self, ctx, fn: Callable, memory_limit_mb: int | None):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, fn, memory_limit_mb), daemon=True)
        self.process.start()
        child.close()
        self.task = None
        self.started = 0.0

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        self.process.join(5)
        self.conn.close()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.send(None)
        self.process.join(2)
        if self.process.is_alive():
            self.kill()
        self.conn.close()


def _death(process) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        extra = " (killed: out of memory?)" if -code == signal.SIGKILL else ""
        return f"worker died from signal {name}{extra}"
    return f"worker exited with code {code}"


def process_context():
    """The multiprocessing context workers start in: fork where the platform has it (fast), else spawn."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def run_pool(fn: Callable, tasks: Iterable, limits: PoolLimits = PoolLimits()) -> Iterator[tuple[object, object]]:
    """Run ``fn(task)`` for every task; yield ``(task, fn's result or WorkerFailure)`` as each ends.

    Results come in completion order. ``fn`` and the tasks must pickle (``fn`` a module-level
    function). Closing the generator early (e.g. ``--fail-fast``) stops every worker.
    """
    if limits.n_workers == 0:
        for task in tasks:
            try:
                yield task, fn(task)
            except Exception as exc:
                yield task, WorkerFailure(type(exc).__name__, " ".join(str(exc).split()))
        return
    ctx = process_context()
    pending = iter(tasks)
    exhausted = False
    workers = [_Worker(ctx, fn, limits.memory_limit_mb) for _ in range(limits.n_workers)]
    try:
        while True:
            for index, worker in enumerate(workers):
                while worker.task is None and not exhausted:
                    task = next(pending, _DONE)
                    if task is _DONE:
                        exhausted = True
                        break
                    try:
                        worker.conn.send(task)
                        worker.task, worker.started = (task,), time.monotonic()
                    except _RECV_ERRORS:  # died while idle: replace it and send again
                        worker.kill()
                        workers[index] = worker = _Worker(ctx, fn, limits.memory_limit_mb)
                        worker.conn.send(task)
                        worker.task, worker.started = (task,), time.monotonic()
            busy = [w for w in workers if w.task is not None]
            if not busy:
                return
            timeout = None
            if limits.time_limit_s is not None:
                timeout = max(0.0, min(w.started for w in busy) + limits.time_limit_s - time.monotonic())
            wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout)
            now = time.monotonic()
            for index, worker in enumerate(workers):
                if worker.task is None:
                    continue
                (task,) = worker.task
                outcome = None
                if worker.conn.poll():
                    try:
                        _ok, outcome = worker.conn.recv()
                    except _RECV_ERRORS:
                        worker.process.join(1)
                        outcome = WorkerFailure("WorkerCrash", _death(worker.process))
                elif not worker.process.is_alive():
                    worker.process.join(1)
                    outcome = WorkerFailure("WorkerCrash", _death(worker.process))
                elif limits.time_limit_s is not None and now - worker.started >= limits.time_limit_s:
                    outcome = WorkerFailure("Timeout", f"took longer than {limits.time_limit_s:g} s (worker killed)")
                    worker.kill()
                if outcome is None:
                    continue
                worker.task = None
                if isinstance(outcome, WorkerFailure) and outcome.error in ("WorkerCrash", "Timeout"):
                    worker.kill()
                    workers[index] = _Worker(ctx, fn, limits.memory_limit_mb)
                yield task, outcome
    finally:
        for worker in workers:
            if worker.task is None:
                worker.stop()
            else:
                worker.kill()


_DONE = object()


def default_workers() -> int:
    """Worker processes to use by default: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
