"""The process pool: a crash, a hang or a runaway allocation costs one task, and the pool goes on."""

import os
import signal
import time

import pytest

from ostinato.corpora.pool import PoolLimits, WorkerFailure, run_pool


def _task(name):
    """Real misbehaviour in a real worker process, chosen by name."""
    if name == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if name == "exit":
        os._exit(3)
    if name == "hang":
        while True:
            time.sleep(0.01)
    if name == "allocate":
        return len(bytearray(8 * 1024**3))  # 8 GiB, over the 512 MiB limit
    if name == "raise":
        raise RuntimeError("bad\nthing")
    return (name, os.getpid())


def test_crash_hang_and_memory_cost_one_task_each():
    names = ["a", "segfault", "b", "hang", "c", "allocate", "d", "exit", "e", "raise", "f"]
    limits = PoolLimits(n_workers=2, time_limit_s=3.0, memory_limit_mb=512)
    outcomes = dict(run_pool(_task, names, limits))
    assert sorted(outcomes) == sorted(names)
    for name in "abcdef":
        assert outcomes[name][0] == name
    assert outcomes["segfault"] == WorkerFailure("WorkerCrash", "worker died from signal SIGSEGV")
    assert outcomes["exit"] == WorkerFailure("WorkerCrash", "worker exited with code 3")
    assert outcomes["hang"] == WorkerFailure("Timeout", "took longer than 3 s (worker killed)")
    assert outcomes["allocate"].error == "MemoryError"
    assert outcomes["raise"] == WorkerFailure("RuntimeError", "bad thing")
    assert os.getpid() not in {outcomes[n][1] for n in "abcdef"}  # all ran in workers


def test_closing_early_stops_the_workers():
    gen = run_pool(_task, ["a", "hang", "hang", "b"], PoolLimits(n_workers=2, time_limit_s=60))
    task, outcome = next(gen)
    assert task == "a"
    gen.close()  # the other worker hangs: closing kills it rather than waiting out the 60 s
    with pytest.raises(ProcessLookupError):
        os.kill(outcome[1], 0)


def test_in_process_mode_and_limits_validation():
    assert next(run_pool(_task, ["a"], PoolLimits(n_workers=0)))[1] == ("a", os.getpid())
    with pytest.raises(ValueError, match="n_workers"):
        PoolLimits(n_workers=-1)
    with pytest.raises(ValueError, match="time_limit_s"):
        PoolLimits(time_limit_s=0)
    with pytest.raises(ValueError, match="memory_limit_mb"):
        PoolLimits(memory_limit_mb=0)
