"""One batch: items in, outputs and a manifest out, resumable, with either runner.

:func:`run_batch` decides what is already done (from the manifest in the output folder),
hands the rest to a runner (the local process pool or Ray), records every result as it
arrives, and for the ``tokens`` target appends ids to shards and writes the index. Only one
batch at a time may write to an output folder (a lock file says so).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from ostinato.events import InputError
from ostinato.events.sources import Item

from .convert import ConvertSpec, Result, convert_item, input_sha256
from .manifest import MANIFEST_NAME, ManifestWriter, latest, read_manifest, versions
from .pool import PoolLimits, WorkerFailure, run_pool

ENGINES = ("local", "ray")
LOCK_NAME = ".ostinato-convert.lock"
# Files of the batch itself (besides each item's output) that are written atomically.
BATCH_FILES = {MANIFEST_NAME, "tokenizer.json", "index.jsonl", "meta.json"}
EARLIER = "done in an earlier run"


class BatchUsageError(ValueError):
    """The batch cannot start as asked (output folder busy, or holding another tokenizer's shards)."""


@dataclass(frozen=True)
class BatchOptions:
    """How a batch runs.

    Attributes:
        engine: ``"local"`` (process pool) or ``"ray"`` (Ray Data).
        limits: workers, per-item time limit and memory limit (the local pool; Ray uses
            ``n_workers`` CPUs and the time limit).
        overwrite: redo items that an earlier run finished.
        fail_fast: stop at the first failed item.
        max_failures: stop once this many items failed (None: never).
        ray_batch_size: items per Ray map batch (tiny files are batched so blocks stay parallel).
        shard_tokens: tokens per shard (``tokens`` target).
    """

    engine: str = "local"
    limits: PoolLimits = field(default_factory=PoolLimits)
    overwrite: bool = False
    fail_fast: bool = False
    max_failures: int | None = None
    ray_batch_size: int = 16
    shard_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.max_failures is not None and self.max_failures < 1:
            raise ValueError(f"max_failures must be >= 1, got {self.max_failures}")
        if self.ray_batch_size < 1:
            raise ValueError(f"ray_batch_size must be >= 1, got {self.ray_batch_size}")


@dataclass
class BatchSummary:
    """Counts of one run: ``converted + failed + skipped + not_attempted == total``."""

    total: int
    converted: int = 0
    failed: int = 0
    skipped: int = 0
    stopped: str | None = None  # why the run stopped early, if it did
    manifest: str = ""

    @property
    def not_attempted(self) -> int:
        return self.total - self.converted - self.failed - self.skipped

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.stopped else 0

    def line(self) -> str:
        return (f"converted {self.converted}/{self.total}, failed {self.failed}, skipped {self.skipped} "
                f"(manifest: {self.manifest})")


# ---------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder/.ostinato-convert.lock`` while converting, and remove it after.

    The file is unlinked while still locked; a run that opened it just before then finds, once it
    holds the lock, that the name no longer leads to its file, and reports the folder busy."""
    path = folder / LOCK_NAME
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            if not path.exists() or os.stat(path).st_ino != os.fstat(f.fileno()).st_ino:
                raise BlockingIOError   # another run held it and removed it: it may have a new lock now
        except BlockingIOError:
            raise BatchUsageError(f"{folder}: another convert is writing to this folder") from None
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _remove_stale_temporaries(folder: Path, planned: set[str]) -> None:
    """Delete half-written temporaries left by a killed run: only files named as our temporaries are
    (:func:`events.atomic.temporary_target`) whose target is one of this batch's ``planned`` outputs
    (paths relative to ``folder``). Nothing else under ``-o`` is touched."""
    from ostinato.events.atomic import temporary_target

    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            target = temporary_target(name)
            if target is not None and Path(dirpath, target).relative_to(folder).as_posix() in planned:
                Path(dirpath, name).unlink(missing_ok=True)


def _outputs_intact(record: dict, folder: Path) -> bool:
    return all((folder / out).is_file() for out in record.get("outputs") or [] if isinstance(out, str))


def spec_options(spec: ConvertSpec) -> dict:
    """The options that shape an output (all of the spec but the folder), as the manifest stores them.

    A rerun with other options (another ABC reader, frame rate, sample rate...) redoes the items.
    """
    fields = {name: getattr(spec, name) for name in spec.__dataclass_fields__ if name not in ("to", "out_dir")}
    if spec.to == "tokens":
        fields["tokenizer"] = "tokenizer.json"  # its content is checked against the folder's copy
    return json.loads(json.dumps(fields))


def _failure_result(item: Item, failure: WorkerFailure) -> Result:
    return Result(key=item.key, input=item.path, status="failed", error=failure.error, message=failure.message)


def _package_versions(spec: ConvertSpec) -> dict[str, str]:
    extra = {"mid": (), "json": (), "pianoroll": (), "abc": ("music21",), "musicxml": ("music21",),
             "tokens": ("miditok",), "audio": ()}[spec.to]
    return versions("symusic", "music21", "numpy", *extra)


def _convert_task(task: tuple[Item, ConvertSpec]) -> Result:
    item, spec = task
    return convert_item(item, spec)


def _warm_up() -> None:
    """What every conversion imports (symusic, our readers and writers), loaded before a worker's memory cap."""
    import symusic  # noqa: F401

    from ostinato.events import io, midi, score  # noqa: F401


_convert_task.warm_up = _warm_up   # corpora.pool calls it in each worker before capping its memory


# ---------------------------------------------------------------------------- tokens
class _Tokens:
    """The tokens target's state: the tokenizer copy in the folder and the shard writer."""

    def __init__(self, spec: ConvertSpec, folder: Path, records: dict[str, dict], options: BatchOptions):
        from ostinato.symbolic.tokenizers import load_tokenizer

        from .shards import DEFAULT_SHARD_TOKENS, ShardWriter, committed_tokens, dtype_for

        self.folder = folder
        self.tokenizer = load_tokenizer(spec.tokenizer)
        self.vocab_size = len(self.tokenizer)
        self.dtype = dtype_for(self.vocab_size)
        ends, self.intact = committed_tokens(records, folder, self.dtype)
        self.writer = ShardWriter(folder, dtype=self.dtype, committed=ends,
                                  shard_tokens=options.shard_tokens or DEFAULT_SHARD_TOKENS)

    @staticmethod
    def prepare(spec: ConvertSpec, folder: Path, overwrite: bool) -> ConvertSpec:
        """Put the tokenizer in the folder (``tokenizer.json``); refuse to mix two tokenizers' shards."""
        from ostinato.symbolic.tokenizers import load_tokenizer, save_tokenizer

        tokenizer = load_tokenizer(spec.tokenizer)
        wanted = json.dumps(tokenizer.to_json(), sort_keys=True)
        saved = folder / "tokenizer.json"
        if overwrite:
            for path in [*folder.glob("train-*.bin"), *folder.glob("test-*.bin"), folder / "index.jsonl",
                         folder / "meta.json"]:
                path.unlink(missing_ok=True)
            if (folder / MANIFEST_NAME).exists():
                os.replace(folder / MANIFEST_NAME, folder / "manifest-previous.jsonl")
        elif saved.exists() and Path(spec.tokenizer).resolve() != saved.resolve():
            try:
                present = json.dumps(load_tokenizer(saved).to_json(), sort_keys=True)
            except InputError:
                present = None
            if present != wanted:
                raise BatchUsageError(f"{folder}: holds tokens made with another tokenizer "
                                      "(use --overwrite, or another output folder)")
        if not saved.exists() or Path(spec.tokenizer).resolve() != saved.resolve():
            save_tokenizer(tokenizer, saved)
        return replace(spec, tokenizer=str(saved))

    def close(self, records: dict[str, dict]) -> None:
        from .shards import write_index

        self.writer.close()
        write_index(self.folder, records, dtype=self.dtype, vocab_size=self.vocab_size,
                    tokenizer_kind=getattr(self.tokenizer, "kind", None))


# ---------------------------------------------------------------------------- the batch
def run_batch(items: list[Item], spec: ConvertSpec, options: BatchOptions = BatchOptions(), *,
              on_result: Callable[[Result], None] | None = None) -> BatchSummary:
    """Convert ``items`` into ``spec.out_dir``; resumable; never stops for one bad item.

    Args:
        items: what to convert (see :mod:`events.sources`); an item whose key or output is an earlier
            item's fails, naming it (:func:`distinct_outputs`).
        spec: the target and its options.
        options: runner, limits, overwrite and failure policy.
        on_result: called with each item's :class:`Result` as it is recorded (for printing).

    Raises:
        BatchUsageError: the output folder is busy, or holds another tokenizer's shards.
        events.InputError: the tokenizer file (``tokens`` target) cannot be loaded (nothing is written).
    """
    folder = Path(spec.out_dir)
    summary = BatchSummary(total=len(items), manifest=str(folder / MANIFEST_NAME))
    items, collisions = distinct_outputs(items, spec)
    if spec.to == "tokens":   # a bad tokenizer file is refused before the output folder is made
        from .convert import cached_tokenizer

        cached_tokenizer(spec.tokenizer)
    folder.mkdir(parents=True, exist_ok=True)
    with _folder_lock(folder):
        planned = {spec.output_for(item.key) for item in items} | BATCH_FILES
        _remove_stale_temporaries(folder, planned)
        tokens = None
        if spec.to == "tokens":
            spec = _Tokens.prepare(spec, folder, options.overwrite)
        records = latest(read_manifest(folder / MANIFEST_NAME, repair=True))
        if spec.to == "tokens":
            tokens = _Tokens(spec, folder, records, options)
        writer = ManifestWriter(folder / MANIFEST_NAME, target=spec.to, versions=_package_versions(spec),
                                options=spec_options(spec), outputs_unsynced=True)   # see deferred_fsync below
        if tokens is not None:
            sync = writer.sync

            def synced() -> None:  # shard bytes reach the disk before the lines that claim them
                tokens.writer.sync()
                sync()

            writer.sync = synced
        try:
            for result, keyed in collisions:   # loud, each naming the item it collides with
                if keyed:   # its key is its own: the manifest records it
                    writer.write(key=result.key, input=result.input, sha256=None, status="failed",
                                 error=result.error, message=result.message, outputs=[], seconds=0.0)
                summary.failed += 1
                if on_result:
                    on_result(result)
            todo = _resume(items, spec, options, records, tokens, folder, writer, summary, on_result)
            _preload(todo, spec, tokens)
            from ostinato.events.atomic import deferred_fsync

            with deferred_fsync():   # outputs reach the disk together, before the manifest lines that claim them
                _run(todo, spec, options, tokens, writer, summary, on_result, records)
        finally:
            writer.close()
            if tokens is not None:
                tokens.close(latest(read_manifest(folder / MANIFEST_NAME)))
    return summary


def distinct_outputs(items: list[Item], spec: ConvertSpec) -> tuple[list[Item], list[tuple[Result, bool]]]:
    """``items`` less those whose key or output is another item's, and a failed Result for each of those.

    Two items collide when they share a key (two source folders of the same name), or their outputs
    are one file (``x.abc`` tune 1 and a file named ``x.abc#1.mid``; ``UP.MID`` and ``UP.MID.mid``),
    compared case-insensitively so that a case-insensitive file system cannot merge them either.
    The first item keeps its output; each later one fails, naming the first. The bool says whether
    the failed item's key is its own (it can be recorded in the manifest under it).
    """
    from ostinato.events.outputs import OutputClaims

    kept: list[Item] = []
    claims = OutputClaims()   # the same rule as render's (events.outputs)
    failed: list[tuple[Result, bool]] = []
    for item in items:
        names = [f"key:{item.key}"]
        if spec.to != "tokens":   # tokens go to shards, keyed by the item's key alone
            names.append(f"out:{spec.output_for(item.key).casefold()}")
        output = spec.output_for(item.key)
        if ".." in PurePosixPath(output).parts or PurePosixPath(output).is_absolute():
            failed.append((Result(key=item.key, input=item.path, status="failed", error="OutputOutside",
                                  message=f"its output {output} would be outside the output folder"), True))
            continue
        other = claims.claim(names, item)
        if other is None:
            kept.append(item)
            continue
        what = "its key" if other.key == item.key else f"its output {spec.output_for(item.key)}"
        message = (f"{what} is also {other.key}'s (from {other.path}); rename one of them or convert them "
                   f"into separate folders")
        failed.append((Result(key=item.key, input=item.path, status="failed", error="OutputCollision",
                              message=message), other.key != item.key))
    return kept, failed


def _resume(items, spec, options, records, tokens, folder, writer, summary, on_result) -> list[Item]:
    todo = []
    wanted = spec_options(spec)
    for item in items:
        record = records.get(item.key)
        done = (not options.overwrite and record is not None and record.get("status") in ("ok", "skipped")
                and record.get("target") == spec.to and record.get("options") == wanted
                and (item.key in tokens.intact if tokens is not None
                     else record.get("outputs") == [spec.output_for(item.key)] and _outputs_intact(record, folder)))
        if done:
            try:
                done = input_sha256(item) == record.get("sha256")
            except InputError:
                done = False
        if not done:
            todo.append(item)
            continue
        result = Result(key=item.key, input=item.path, sha256=record.get("sha256"), status="skipped",
                        message=EARLIER, outputs=record.get("outputs") or [])
        # not written again: the manifest already holds this item's record (a rerun must not grow it)
        summary.skipped += 1
        if on_result:
            on_result(result)
    return todo


def _preload(todo: list[Item], spec: ConvertSpec, tokens: _Tokens | None) -> None:
    """Import what the items need before the pool forks, so workers (and their replacements) share it."""
    from . import convert

    if tokens is not None:
        convert._TOKENIZERS.setdefault(spec.tokenizer, tokens.tokenizer)
    music21_suffixes = (".xml", ".musicxml", ".mxl", ".krn")
    needs_music21 = spec.to == "musicxml" or any(
        Path(item.path).suffix.lower() in music21_suffixes or (item.is_abc and spec.abc_reader == "music21")
        for item in todo)
    if needs_music21 and todo:
        import music21.converter  # noqa: F401


def _run(todo, spec, options, tokens, writer, summary, on_result, records) -> None:
    if options.engine == "ray":
        from .ray_runner import run_ray

        results = run_ray(todo, spec, n_cpus=options.limits.n_workers or 1, batch_size=options.ray_batch_size,
                          time_limit_s=options.limits.time_limit_s)
    else:
        results = _local(todo, spec, options.limits)
    try:
        for item, outcome in results:
            result = _failure_result(item, outcome) if isinstance(outcome, WorkerFailure) else outcome
            if tokens is not None and result.status == "ok":
                try:
                    result.outputs = [tokens.writer.append(item.split, result.tokens)]
                except ValueError as exc:
                    result.status, result.error, result.message = "failed", "ValueError", str(exc)
            writer.write(key=result.key, input=result.input, sha256=result.sha256, status=result.status,
                         error=result.error, message=result.message, outputs=result.outputs,
                         seconds=round(result.seconds, 4))
            if result.status == "ok":
                summary.converted += 1
            elif result.status == "skipped":
                summary.skipped += 1
            else:
                summary.failed += 1
            if on_result:
                on_result(result)
            if result.status == "failed" and options.fail_fast:
                summary.stopped = "stopped at the first failure (--fail-fast)"
                break
            if options.max_failures is not None and summary.failed >= options.max_failures:
                summary.stopped = f"stopped after {summary.failed} failures (--max-failures {options.max_failures})"
                break
    finally:
        results.close()  # stops the workers when the run stopped early


def _local(todo: list[Item], spec: ConvertSpec, limits: PoolLimits) -> Iterator[tuple[Item, object]]:
    pool = run_pool(_convert_task, ((item, spec) for item in todo), limits)
    try:
        for (item, _spec), outcome in pool:
            yield item, outcome
    finally:
        pool.close()
