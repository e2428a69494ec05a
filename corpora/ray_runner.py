"""The Ray runner: the same per-item function (:func:`corpora.convert.convert_item`) on Ray Data.

Items become rows of a Ray dataset; ``map_batches`` converts ``batch_size`` items per call
(tiny files are batched, so per-task overhead stays small), and the dataset is cut into
enough blocks that every CPU has work. Errors are caught per item *inside* the map, so one
bad file never fails a Ray task, and a result comes back for every item. A per-item time
limit is kept with ``SIGALRM`` in the Ray worker (it interrupts Python code, such as
music21 stuck in a loop; a hang inside C code that never returns to Python is not
interrupted, and needs the local runner, whose watchdog kills the process).

Ray is an optional extra: ``pip install 'ostinato[ray]'``. If Ray is not running yet, a
local instance with ``n_cpus`` CPUs is started for the batch and shut down after it; to use
a cluster, call ``ray.init(address=...)`` first.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import threading
from collections.abc import Iterator

import numpy as np

from ostinato.events.sources import Item

from .convert import ConvertSpec, Result, convert_item


class Timeout(BaseException):
    """An item ran past its time limit inside a Ray worker.

    A ``BaseException``, so that libraries that catch ``Exception`` (music21 does) cannot swallow it.
    """


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise Timeout(f"took longer than {seconds:g} s (interrupted)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def convert_batch(batch: dict[str, np.ndarray], *, spec: ConvertSpec, time_limit_s: float | None) -> dict:
    """Ray map function: convert each row's item; returns ``index`` and a pickled :class:`Result` per row."""
    results = []
    for item_bytes in batch["item"]:
        item: Item = pickle.loads(item_bytes)
        try:
            with _time_limit(time_limit_s):
                result = convert_item(item, spec)
        except Timeout as exc:
            result = Result(key=item.key, input=item.path, status="failed", error="Timeout", message=str(exc))
        except Exception as exc:  # never let one item fail the Ray task
            result = Result(key=item.key, input=item.path, status="failed", error=type(exc).__name__,
                            message=" ".join(str(exc).split()))
        results.append(pickle.dumps(result))
    return {"index": batch["index"], "result": np.array(results, dtype=object)}


def run_ray(items: list[Item], spec: ConvertSpec, *, n_cpus: int, batch_size: int = 16,
            time_limit_s: float | None = None) -> Iterator[tuple[Item, Result]]:
    """Yield ``(item, Result)`` for every item, converted on Ray Data (results in completion order)."""
    import ray

    if not items:
        return
    started_here = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        ray.init(num_cpus=max(1, n_cpus), include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 configure_logging=False)
        started_here = True
    import logging

    for name in ("ray", "ray.data"):  # the batch prints its own summary
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        with contextlib.suppress(AttributeError):
            context.print_on_execution_start = False
        rows = [{"index": i, "item": pickle.dumps(item)} for i, item in enumerate(items)]
        n_cpus_total = max(1, int(ray.cluster_resources().get("CPU", 1)))
        n_blocks = max(1, min(len(rows) // batch_size + 1, 4 * n_cpus_total))
        dataset = ray.data.from_items(rows, override_num_blocks=n_blocks).map_batches(
            convert_batch, batch_size=batch_size, batch_format="numpy",
            fn_kwargs={"spec": spec, "time_limit_s": time_limit_s},
        )
        for row in dataset.iter_rows():
            yield items[int(row["index"])], pickle.loads(row["result"])
    finally:
        if started_here:
            ray.shutdown()
