"""Training the symbolic model: packed sequences, AdamW with warm-up and cosine decay, exact resume.

    train(data=..., tokenizer=..., model_config=ModelConfig(...), config=TrainConfig(steps=2000),
          out_dir="models/folk", resume=False, command="ostinato train symbolic ...")

Writes into ``out_dir``:

- ``checkpoints/step-NNNNNNN/``: a model folder plus ``optimizer.pt`` and ``trainer_state.json``,
  written under a temporary name and renamed, so a crash (or a full disk) never costs the
  previous checkpoint; ``checkpoints/latest`` names the newest;
- ``train_log.jsonl``: one line per step (loss, learning rate) and per evaluation;
- at the end, the model folder itself (``config.json``, ``model.safetensors``, ``tokenizer.json``),
  ``metrics.json`` and ``model_card.md``.

The batch of step ``s`` depends only on (seed, s) and dropout is reseeded every step, so a run
resumed from a checkpoint follows the loss curve of an uninterrupted one. Under torchrun each
process takes its slice of the same global batch (DDP averages the gradients).
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError

from ostinato.events.atomic import write_text_atomic
from ostinato.events.errors import InputError

from . import distributed
from .data import TokenData, pack, sample_blocks, sequence_starts, unigram_entropy_bits
from .fim import INTERIOR_SHARE, context_weights
from .model import ModelConfig, build_model, load_model_folder, save_model_folder

log = logging.getLogger("ostinato")

LN2 = math.log(2.0)
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (all steps count optimizer updates).

    Attributes:
        steps: total optimizer steps.
        batch_size: sequences per step, over all processes (must divide by the process count).
        learning_rate: peak AdamW learning rate, reached after ``warmup_steps``.
        min_lr_ratio: the cosine decay ends at ``learning_rate * min_lr_ratio``.
        weight_decay: AdamW decoupled weight decay (not on biases, norms and embeddings).
        grad_clip: clip the global gradient norm to this (0 disables).
        eval_every, checkpoint_every: in steps; the last step always does both.
        keep_checkpoints: how many recent checkpoints stay on disk.
        seed: seeds initialisation, batches and dropout.
        precision: the matrix arithmetic of the training steps (:func:`train_dtype`): ``"auto"`` (bfloat16
            autocast where the device multiplies it natively, float32 elsewhere), ``"fp32"`` or ``"bf16"``.
            Master weights, optimizer state and the loss stay float32; held-out figures are float32 on a CPU
            whatever the training precision, so they compare across runs.
        infill_context_weight: the loss weight of a fill-in-the-middle sequence's suffix and prefix (its
            middle's tokens weigh 1; :func:`symbolic.fim.context_weights`); 1 trains every token alike.
        distill_weight: with teacher models (:func:`train`'s ``teachers``), the share of each target's loss
            that is the KL divergence from the teachers' mixture to the model (knowledge distillation); the rest is
            the cross-entropy of the token itself. 0 without teachers.
    """

    steps: int = 2000
    batch_size: int = 16
    learning_rate: float = 6e-4
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 200
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    seed: int = 0
    precision: str = "auto"
    infill_context_weight: float = 1.0
    distill_weight: float = 0.0

    def __post_init__(self) -> None:
        _check_precision(self.precision)
        for name in ("steps", "batch_size", "eval_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps: expected >= 0, got {self.warmup_steps!r}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"learning_rate: expected > 0, got {self.learning_rate!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio: expected 0..1, got {self.min_lr_ratio!r}")
        if not 0 <= self.infill_context_weight <= 1:
            raise ValueError(f"infill_context_weight: expected 0..1, got {self.infill_context_weight!r}")
        if not 0 <= self.distill_weight <= 1:
            raise ValueError(f"distill_weight: expected 0..1, got {self.distill_weight!r}")

    def lr_at(self, step: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based): linear warm-up, then cosine decay."""
        if step < self.warmup_steps:
            return self.learning_rate * (step + 1) / self.warmup_steps
        span = max(self.steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return self.learning_rate * (self.min_lr_ratio + (1 - self.min_lr_ratio) * cosine)


# ---------------------------------------------------------------------------- evaluation
def score_windows(n_ids: int, context: int) -> list[tuple[int, int]]:
    """``(start, first)`` windows that score a piece of ``n_ids`` tokens: the window is
    ``ids[start:start + context + 1]`` and scores its targets from position ``first`` on (positions in the
    piece), so every token after the first ``<bos>`` is predicted exactly once. A piece longer than the
    context is scored by windows that slide half a context at a time: each token past the first window
    is predicted seeing at least ``context // 2`` tokens before it, as a model sampling it would see
    them, not from a cold start (the perplexity of a sliding window, not of disjoint chunks)."""
    windows, scored = [(0, 1)], min(n_ids, context + 1)   # the first window scores targets 1 .. context
    stride = max(context // 2, 1)
    while scored < n_ids:
        start = scored + stride - context - 1 if scored + stride <= n_ids else n_ids - context - 1
        windows.append((start, scored))
        scored = start + context + 1
    return windows


def scored_batches(model, pieces, *, context: int, pad_id: int, device: torch.device, batch_size: int = 16,
                   on_batch=None):
    """Yield ``(logits, targets, rows)`` for the windows (:func:`score_windows`) that score ``pieces``: a
    batch's float32 logits ``[B, T, V]``, its targets ``[B, T]`` (-100 where a position is not scored) and
    ``rows``, the index in ``pieces`` of each of its windows. Each token after a piece's first ``<bos>`` is a
    scored target exactly once over all batches. ``on_batch(done, total)``, when given, is called after each
    batch with the windows scored so far. The model is in eval mode meanwhile, under no_grad."""
    chunks = []
    for index, piece in enumerate(pieces):
        for start, first in score_windows(len(piece.ids), context):
            chunk = piece.ids[start:start + context + 1]
            if len(chunk) > 1:
                chunks.append((chunk, first - start - 1, index))   # targets before `first` are scored elsewhere
    chunks.sort(key=lambda c: len(c[0]))
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(chunks), batch_size):
            group = chunks[i:i + batch_size]
            width = max(len(c) for c, _, _ in group)
            ids = torch.full((len(group), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(group), width), dtype=torch.long)
            scored = torch.zeros((len(group), width - 1), dtype=torch.bool)
            for row, (chunk, skip, _) in enumerate(group):
                ids[row, :len(chunk)] = torch.from_numpy(chunk.astype(np.int64))
                mask[row, :len(chunk)] = 1
                scored[row, skip:len(chunk) - 1] = True
            ids, mask = ids.to(device), mask.to(device)
            with torch.no_grad(), _autocast(device):
                logits = model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1]).logits.float()  # [B, T-1, V]
            yield logits, ids[:, 1:].masked_fill(~scored.to(device), -100), [index for _, _, index in group]
            if on_batch is not None:
                on_batch(min(i + batch_size, len(chunks)), len(chunks))
    finally:
        model.train(was_training)


def piece_log_probs(model, ids, context: int):
    """``(positions, log_probs)``: each token of a piece after the first ``<bos>``, scored as :func:`heldout_nats`
    scores it (the windows of :func:`score_windows`), at its position in ``ids``, and the model's
    log-probabilities [N, V] (float32, on the CPU) of the token there."""
    ids = np.asarray(ids, np.int64)
    device = next(model.parameters()).device
    positions, rows = [], []
    for start, first in score_windows(len(ids), context):
        chunk = ids[start:start + context + 1]
        if len(chunk) < 2:
            continue
        with torch.no_grad():
            logits = model(input_ids=torch.from_numpy(chunk[None, :-1]).to(device)).logits.float()[0].cpu()
        rows.append(torch.log_softmax(logits, -1)[first - start - 1:])   # the logits at j predict chunk[j + 1]
        positions.extend(range(first, start + len(chunk)))
    return positions, (torch.cat(rows) if rows else torch.zeros((0, 0)))


def heldout_nats(model, pieces, *, context: int, pad_id: int, device: torch.device, batch_size: int = 16,
                 on_batch=None) -> dict:
    """Total negative log-likelihood (nats) of held-out pieces, with token and unit counts.

    A piece longer than ``context`` is scored by sliding windows (:func:`score_windows`): every token
    after the first ``<bos>`` is predicted exactly once, with at least half a context before it.
    ``on_batch(done, total)``, when given, is called after each batch with windows scored so far.
    """
    nats, n_tokens = 0.0, 0
    for logits, targets, _ in scored_batches(model, pieces, context=context, pad_id=pad_id, device=device,
                                             batch_size=batch_size, on_batch=on_batch):
        nats += torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100,
                                                  reduction="sum").item()
        n_tokens += int((targets != -100).sum())
    units = sum(piece.n_units for piece in pieces)
    n_pieces = len({piece.piece for piece in pieces})   # a MIDI piece's windows are one piece
    return {"nats": nats, "n_tokens": n_tokens, "n_units": units, "n_pieces": n_pieces, "n_sequences": len(pieces)}


def likelihood_figures(totals: dict, unit: str) -> dict:
    """Bits per token and per character (ABC) or per note (MIDI) from :func:`heldout_nats` totals."""
    bits = totals["nats"] / LN2
    figures = {"bits_per_token": bits / max(totals["n_tokens"], 1), "n_tokens": totals["n_tokens"],
               "n_pieces": totals["n_pieces"]}
    if "n_sequences" in totals:   # a long MIDI piece is several windows
        figures["n_sequences"] = totals["n_sequences"]
    figures["bits_per_char" if unit == "char" else "bits_per_note"] = bits / max(totals["n_units"], 1)
    figures["n_chars" if unit == "char" else "n_notes"] = totals["n_units"]
    return figures


def _autocast(device: torch.device):
    """Evaluation's autocast: bfloat16 on a GPU, float32 (none) on a CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 in hardware: a CUDA GPU that supports it, or a CPU with
    AVX512-BF16 or AMX (elsewhere bfloat16 is emulated, and slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:   # a torch without the probes
        return False


def train_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The autocast dtype of the training steps for ``precision`` (:attr:`TrainConfig.precision`) on ``device``."""
    _check_precision(precision)
    if precision == "bf16" or (precision == "auto" and native_bf16(device)):
        return torch.bfloat16
    return torch.float32


# ---------------------------------------------------------------------------- checkpoints
def _checkpoint_dir(out_dir: Path) -> Path:
    return out_dir / "checkpoints"


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint folder of a training run, or None."""
    root = _checkpoint_dir(Path(out_dir))
    pointer = root / "latest"
    if not pointer.is_file():
        return None
    path = root / pointer.read_text().strip()
    if not path.is_dir():
        raise InputError(pointer, f"names {path.name}, which does not exist")
    return path


def save_checkpoint(out_dir: Path, step: int, model, tokenizer, optimizer, state: dict, keep: int) -> Path:
    """Write checkpoint ``step`` atomically (temp folder, then rename); drop the oldest beyond ``keep``.

    Raises:
        InputError: the checkpoint could not be written (e.g. the disk is full); the temp
            folder is removed and the previous checkpoint is untouched.
    """
    root = _checkpoint_dir(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:07d}"
    tmp = root / f".step-{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        save_model_folder(model, tokenizer, tmp)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        write_text_atomic(tmp / "trainer_state.json", json.dumps(state, indent=1) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        write_text_atomic(root / "latest", final.name + "\n")
    except (OSError, SafetensorError) as exc:   # e.g. a full disk
        shutil.rmtree(tmp, ignore_errors=True)
        previous = root / "latest"
        kept = f"; the previous checkpoint {previous.read_text().strip()} is kept" if previous.is_file() else ""
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(final, f"cannot write the checkpoint ({reason}){kept}") from None
    old = sorted(p for p in root.glob("step-*") if p.is_dir() and p != final)
    for stale in old[:max(len(old) - keep + 1, 0)]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def load_checkpoint(path: Path, device: torch.device):
    """``(model, tokenizer, model_config, optimizer_state, trainer_state)`` of a checkpoint folder."""
    model, tokenizer, model_config = load_model_folder(path, device=str(device))
    try:
        optimizer_state = torch.load(path / "optimizer.pt", map_location=device, weights_only=True)
        state = json.loads((path / "trainer_state.json").read_text())
    except FileNotFoundError as exc:
        raise InputError(path, f"incomplete checkpoint (no {Path(exc.filename).name})") from None
    except Exception as exc:
        raise InputError(path, f"corrupt checkpoint: {' '.join(str(exc).split())[:200]}") from None
    return model, tokenizer, model_config, optimizer_state, state


# ---------------------------------------------------------------------------- the loop
def make_optimizer(model, config: TrainConfig) -> torch.optim.AdamW:
    """The AdamW the trainer steps ``model`` with: ``config``'s weight decay on the weight matrices, none on
    biases, norms and embeddings; betas (0.9, 0.95)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "wte" in name or "wpe" in name or "embed" in name else decay).append(param)
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=config.learning_rate, betas=(0.9, 0.95), eps=1e-8)


def train_step(model, optimizer, batch: torch.Tensor, *, dtype: torch.dtype = torch.float32,
               grad_clip: float = 0.0, weights: torch.Tensor | None = None, teachers=(),
               distill_weight: float = 0.0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One optimizer step on ``batch`` ([b, T+1] token ids; each row predicts its own next tokens), the
    forward pass under ``dtype`` autocast (:func:`train_dtype`). Returns (loss, gradient norm before
    clipping, None without ``grad_clip``). ``model`` may be DDP-wrapped. ``weights`` ([b, T], optional):
    each target's weight in the loss, a weighted mean (None: every target alike); under DDP each process
    takes its own rows' weighted mean and the gradients are averaged, as for the plain mean.

    ``teachers`` (models of the same vocabulary, not trained here): each target's loss is then
    ``(1 - distill_weight) * cross-entropy + distill_weight * KL(teachers || model)``, the teachers' distribution
    being the mean of their next-token probabilities (the ensemble :func:`teacher_log_probs` computes).

    Raises:
        TrainingDiverged: the loss is not finite (nothing was updated).
    """
    with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        logits = model(input_ids=batch[:, :-1]).logits  # [b, T, V]
    flat = logits.float().reshape(-1, logits.shape[-1])
    each = torch.nn.functional.cross_entropy(flat, batch[:, 1:].reshape(-1), reduction="none")
    if teachers and distill_weight > 0:
        target = teacher_log_probs(teachers, batch[:, :-1], dtype=dtype).reshape(-1, flat.shape[-1])
        kl = torch.nn.functional.kl_div(torch.log_softmax(flat, -1), target, log_target=True,
                                        reduction="none").sum(-1)
        each = (1 - distill_weight) * each + distill_weight * kl
    if weights is None:
        loss = each.mean()
    else:
        weights = weights.reshape(-1).to(each.dtype)
        loss = (each * weights).sum() / weights.sum().clamp_min(1e-9)
    if not torch.isfinite(loss):   # diverged: stop before a NaN reaches the weights or a checkpoint
        raise TrainingDiverged(f"the loss is {loss.item()}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip) if grad_clip else None
    optimizer.step()
    return loss, grad_norm


@torch.no_grad()
def teacher_log_probs(teachers, ids: torch.Tensor, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Log of the mean next-token distribution of ``teachers`` at each position of ``ids`` ([b, T] -> [b, T, V],
    float32): an ensemble of equal weights, the distribution a distilled model learns to match."""
    with torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        each = [torch.log_softmax(teacher(input_ids=ids).logits.float(), -1) for teacher in teachers]
    return torch.logsumexp(torch.stack(each), 0) - math.log(len(each))


def _step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.default_rng([seed, step, rank, 7]).integers(2**62))


def train(*, data: TokenData, tokenizer, model_config: ModelConfig, config: TrainConfig,
          out_dir: str | os.PathLike, resume: bool = False, command: str = "", source: str = "",
          ctx: distributed.Context | None = None, show_progress: bool = True, init_model=None,
          init_from: str = "", init_layers: int = 0, instruments: str = "keep", infill_share: float = 0.0,
          transpose: tuple[int, ...] = (), ensembles: bool = False, leave_out: tuple[str, ...] = (),
          expand_repeats: bool = False, teachers=(), teacher_names: tuple[str, ...] = ()) -> dict:
    """Train (or resume) a model on ``data``; returns the final held-out figures.

    ``instruments`` (``keep``/``ensemble``, how ``data`` was made) is recorded for ``evaluate nll``.
    ``init_model`` (a loaded model of ``model_config`` and ``tokenizer``; ``init_from`` names it
    in the card) replaces the random initial weights: fine-tuning, or a second schedule; ``init_layers``: the
    layers it had before ``--config`` deepened it (:func:`symbolic.model.grow_layers`), recorded in metrics.json.
    ``infill_share``: the share of training sequences in the fill-in-the-middle form
    (:func:`symbolic.infill.fim_parts`; the tokenizer must have the infill tokens), recorded in metrics.json.
    ``transpose``: semitone shifts each training piece is also trained in; ``ensembles``: each such copy
    on an ensemble drawn from those its parts can be given (:func:`symbolic.data.augmented`); the
    held-out pieces stay as written. ``leave_out``: the collections ``data`` was made without, and
    ``expand_repeats`` (its scores' repeats were played out), recorded in metrics.json and the card.
    ``teachers``: loaded models of ``tokenizer``'s vocabulary whose mixture the model is distilled from
    (``config.distill_weight``, :func:`train_step`), named by ``teacher_names`` in metrics.json and the card.

    Raises:
        InputError: a checkpoint exists and ``resume`` is False, or the checkpoint is corrupt.
    """
    ctx = ctx or distributed.Context()
    out_dir = Path(out_dir)
    if config.batch_size % ctx.world_size:
        raise ValueError(f"batch_size: {config.batch_size} does not divide over {ctx.world_size} processes")
    checkpoint = latest_checkpoint(out_dir)
    if checkpoint is not None and not resume:
        raise InputError(out_dir, f"already has a checkpoint ({checkpoint.name}): pass --resume to continue it, "
                                  f"or choose another --out")

    start_step, optimizer_state, elapsed_before = 0, None, 0.0
    schedule = [{"from_step": 0, "steps": config.steps, "command": command}]
    if checkpoint is not None:
        model, saved_tokenizer, model_config, optimizer_state, state = load_checkpoint(checkpoint, ctx.device)
        if saved_tokenizer.to_json() != tokenizer.to_json():
            raise InputError(checkpoint, "was trained with another tokenizer than this run's")
        start_step, elapsed_before = int(state["step"]), float(state.get("elapsed_s", 0.0))
        if state.get("teachers", []) != list(teacher_names):   # a changed loss would go unrecorded
            def said(names):
                return " ".join(f"--teacher {name}" for name in names) or "no --teacher"
            raise InputError(checkpoint, f"was trained with {said(state.get('teachers', []))}: resume with the "
                                         f"same (not {said(teacher_names)})")
        schedule = _schedule_of(state)
        if config.steps != schedule[-1]["steps"]:   # a resume with another --steps extends (or ends) the run
            schedule.append({"from_step": start_step, "steps": config.steps, "command": command})
        if ctx.is_main:
            log.info("resuming from %s (step %d of %d)", checkpoint, start_step, config.steps)
    elif init_model is not None:
        model = init_model
    else:
        torch.manual_seed(config.seed)
        model = build_model(model_config, len(tokenizer), pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id,
                            eos_id=tokenizer.eos_id)
    model.to(ctx.device).train()
    optimizer = make_optimizer(model, config)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    wrapped = model
    if ctx.distributed:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)

    pieces = data.train
    if transpose or ensembles:
        from .data import augmented

        pieces = augmented(pieces, tokenizer, shifts=transpose, ensembles=ensembles, seed=config.seed)
    plain_pieces, epoch_steps = pieces, max(1, len(pieces) // config.batch_size)

    def epoch_stream(epoch: int):
        """The packed sequences of pass ``epoch`` over the data (``epoch_steps`` steps each): a fill-in-the-
        middle share draws new middles each pass, so a long run does not see the same cuts again."""
        if infill_share <= 0:
            return plain_pieces
        from .data import fim_parts

        return fim_parts(plain_pieces, tokenizer, share=infill_share, seed=config.seed,
                         max_tokens=model_config.context, epoch=epoch)

    pieces = epoch_stream(0)   # the summary's figures are the first pass's, whatever step a run resumes at
    stream, starts = pack(pieces), sequence_starts(pieces)
    epoch = 0
    block = model_config.context + 1
    per_rank = config.batch_size // ctx.world_size
    log_path = out_dir / "train_log.jsonl"
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        _truncate_log(log_path, start_step)
    summary = {"unigram_bits_per_token": unigram_entropy_bits(stream, len(tokenizer)),
               "n_train_pieces": len(data.train), "n_test_pieces": len(data.test),
               "n_train_tokens": len(stream), "n_failed_pieces": len(data.failures),
               "n_train_sequences": len(pieces)}

    progress = None
    if ctx.is_main and show_progress:
        from tqdm import tqdm

        progress = tqdm(total=config.steps, initial=start_step, desc="train", unit="step", file=sys.stderr,
                        dynamic_ncols=True, mininterval=0.5, disable=not sys.stderr.isatty())
    started = time.perf_counter()
    figures: dict = {}
    tokens_per_step = config.batch_size * model_config.context
    dtype = train_dtype(config.precision, ctx.device)
    for step in range(start_step, config.steps):
        tick = time.perf_counter()
        if infill_share > 0 and step // epoch_steps != epoch:
            epoch = step // epoch_steps
            passed = epoch_stream(epoch)
            stream, starts = pack(passed), sequence_starts(passed)
        batch = sample_blocks(stream, block=block, batch=config.batch_size, seed=config.seed, step=step,
                              starts=starts)
        batch = batch[ctx.rank * per_rank:(ctx.rank + 1) * per_rank]
        weights = None
        if infill_share > 0 and config.infill_context_weight != 1:
            weights = torch.from_numpy(context_weights(tokenizer, batch, config.infill_context_weight)).to(ctx.device)
        batch = torch.from_numpy(batch).to(ctx.device)  # [b, T+1]
        lr = config.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        torch.manual_seed(_step_seed(config.seed, step, ctx.rank))  # dropout: the same on resume
        try:
            loss, grad_norm = train_step(wrapped, optimizer, batch, dtype=dtype, grad_clip=config.grad_clip,
                                         weights=weights, teachers=teachers, distill_weight=config.distill_weight)
        except TrainingDiverged as exc:
            raise TrainingDiverged(f"{exc} at step {step + 1} (learning rate {lr:.3g}); the last checkpoint is "
                                   f"kept: resume with a lower --lr") from None
        done = step + 1
        if ctx.distributed:   # log the loss of the whole global batch, as one process would
            loss = loss.detach().clone()
            torch.distributed.all_reduce(loss, op=torch.distributed.ReduceOp.AVG)
        if not ctx.is_main:
            continue
        loss_value = loss.item()
        record = {"step": done, "loss": loss_value, "lr": lr}
        if grad_norm is not None:
            record["grad_norm"] = float(grad_norm)
        _append_log(log_path, record)
        if progress is not None:
            rate = tokens_per_step / max(time.perf_counter() - tick, 1e-9)
            progress.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{rate:,.0f}", refresh=False)
            progress.update(1)
        last = done == config.steps
        if data.test and (done % config.eval_every == 0 or last):
            totals = heldout_nats(model, data.test, context=model_config.context, pad_id=tokenizer.pad_id,
                                  device=ctx.device)
            figures = likelihood_figures(totals, data.unit)
            _append_log(log_path, {"step": done, "heldout": figures})
            message = ", ".join(f"{k} {v:.4f}" for k, v in figures.items() if k.startswith("bits"))
            (progress.write if progress is not None else log.info)(f"step {done}: held-out {message}")
        if done % config.checkpoint_every == 0 or last:
            state = {"step": done, "elapsed_s": elapsed_before + time.perf_counter() - started,
                     "train_config": asdict(config), "source": source, "command": command, "schedule": schedule,
                     "teachers": list(teacher_names)}
            save_checkpoint(out_dir, done, model, tokenizer, optimizer, state, config.keep_checkpoints)
    if progress is not None:
        progress.close()
    ctx.barrier()
    if not ctx.is_main:
        return figures
    if not data.test:
        log.warning("%s: no held-out pieces in this source (the split holds out about 5%% of pieces); "
                    "no held-out figures", source)
    elapsed = elapsed_before + time.perf_counter() - started
    save_model_folder(model, tokenizer, out_dir)
    metrics = {"name": out_dir.resolve().name, "heldout": figures, **summary, "steps": config.steps,
               "elapsed_s": round(elapsed, 1),
               "device": _device_name(ctx), "precision": "bf16" if dtype == torch.bfloat16 else "fp32",
               "n_processes": ctx.world_size, "source": source, "command": command,
               "model": asdict(model_config), "train": asdict(config), "init_from": init_from or None,
               "init_layers": init_layers or None,
               "schedule": schedule, "instruments": instruments, "infill_share": infill_share,
               "infill_order": getattr(tokenizer, "infill_order", None) if infill_share else None,
               "infill_span": "span" in tokenizer.blocks if infill_share else None,
               "infill_interior": INTERIOR_SHARE if infill_share else None,
               "windows": "sequence starts",
               "transpose": list(transpose), "ensembles": ensembles, "left_out": sorted(leave_out),
               "expand_repeats": expand_repeats,
               "teachers": list(teacher_names) if teachers else None,
               **seen_controls(tokenizer, data.train),
               "n_parameters": sum(p.numel() for p in model.parameters())}
    write_text_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=1) + "\n")
    write_text_atomic(out_dir / "model_card.md", model_card(metrics, tokenizer, data))
    return figures


def _device_name(ctx: distributed.Context) -> str:
    if ctx.device.type == "cuda":
        return torch.cuda.get_device_name(ctx.device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _append_log(path: Path, record: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite (too high a learning rate, usually)."""


def _truncate_log(path: Path, step: int) -> None:
    """Keep the log lines up to ``step`` (a resumed run rewrites what came after its checkpoint)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:   # a line torn by a kill mid-write: dropped, the checkpoint is what counts
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            keep.append(line)
    write_text_atomic(path, "".join(line + "\n" for line in keep))


def _schedule_of(state: dict) -> list[dict]:
    """The run's schedules so far: ``[{"from_step", "steps", "command"}]`` (one unless a resume changed --steps)."""
    if "schedule" in state:
        return list(state["schedule"])
    first = state.get("command", "").replace(" --resume", "")
    return [{"from_step": 0, "steps": int(state["train_config"]["steps"]), "command": first}]


def _command_block(metrics: dict) -> str:
    schedule = metrics.get("schedule") or []
    if len(schedule) <= 1:
        return f"```\n{metrics['command']}\n```"
    lines = ["The run was resumed with another `--steps`, which changes the learning-rate schedule from that",
             "step on (cosine decay to the new last step); each command ran from its first step to the next one's:", ""]
    for segment, following in zip(schedule, [*schedule[1:], None], strict=True):
        end = following["from_step"] if following else metrics["steps"]
        lines += [f"- steps {segment['from_step']}-{end} (a {segment['steps']}-step schedule):", "",
                  f"  ```\n  {segment['command']}\n  ```"]
    return "\n".join(lines)


def _windows(metrics: dict) -> str:
    if metrics.get("windows") == "sequence starts":
        return ("windows of the context's length, each from the start of a sequence on (packed: it runs on "
                "into the next)")
    return "windows of the context's length from anywhere in the packed training sequences"


def _infill_line(metrics: dict) -> str:
    share = metrics.get("infill_share") or 0
    order = {"spm": " (suffix-prefix-middle order", "psm": " (prefix-suffix-middle order"}.get(
        metrics.get("infill_order", ""), "")
    if order:
        order += ", the middle's length in bars before it)" if metrics.get("infill_span") else ")"
    interior = metrics.get("infill_interior")
    inside = (f"; {interior:.0%} of the middles with a bar before and after them, in sequences of 3 bars or more"
              if interior else "")
    weight = (metrics.get("train") or {}).get("infill_context_weight", 1.0)
    if weight != 1:
        inside += f"; their suffix and prefix weigh {weight:g} in the loss, their middle 1"
    return (f"\n- {share:.0%} of the training sequences in the fill-in-the-middle form{order}{inside}: the model "
            f"rewrites bars inside a piece (`ostinato compose --primer FILE --infill 5-8`).") if share else ""


def _distill_line(metrics: dict) -> str:
    teachers = metrics.get("teachers")
    if not teachers:
        return ""
    weight = (metrics.get("train") or {}).get("distill_weight", 0.0)
    what, them = (("the mean of their next-token distributions", "them") if len(teachers) > 1 else
                  ("its next-token distribution", "it"))
    return (f"\n- Distilled from {', '.join(f'`{name}`' for name in teachers)} ({what}): each target's loss is "
            f"{weight:g} x the KL divergence from {them} and {1 - weight:g} x the token's cross-entropy.")


def _transpose_line(metrics: dict) -> str:
    shifts = metrics.get("transpose") or []
    if not shifts:
        return ""
    return (f"\n- Transposition augmentation: each training piece also in every shift of {min(shifts):+d}.."
            f"{max(shifts):+d} semitones it can take (MIDI: its parts in their instruments' ranges; ABC: the key "
            f"moved and the notes re-spelled; {metrics.get('n_train_sequences', '?')} training sequences); "
            f"held-out pieces as written.")


def _ensembles_line(metrics: dict) -> str:
    if not metrics.get("ensembles"):
        return ""
    return ("\n- Ensemble augmentation: each augmented copy is played by an ensemble drawn from those its parts "
            "can be given (`events.instruments.ENSEMBLES`), so every style is heard on every ensemble.")


def _expand_line(metrics: dict) -> str:
    if not metrics.get("expand_repeats"):
        return ""
    return ("\n- Repeats played out (`--expand-repeats`): each score's repeats and endings as a performance has them, "
            "held-out pieces too (`evaluate nll` reads them so for this model).")


def _left_out_line(metrics: dict) -> str:
    left = metrics.get("left_out") or []
    return (f"\n- Left out of training (to measure it on music it never saw): {', '.join(left)}."
            if left else "")


def _init_line(metrics: dict) -> str:
    init = metrics.get("init_from")
    if not init:
        return ""
    layers, now = metrics.get("init_layers"), metrics["model"]["n_layers"]
    deepened = (f", deepened from {layers} to {now} layers (each new block a copy of the one before it whose output "
                f"projections start at zero)") if layers and layers != now else ""
    return f"\n- Started from the weights of `{init}` (see its model card){deepened}, not from random ones."


CONTROL_BLOCKS = {"Inst:": "trained_instruments", "Style:": "trained_styles"}


def seen_controls(tokenizer, pieces) -> dict[str, list[str]]:
    """``{"trained_instruments": [...], "trained_styles": [...]}``: the control values (``Inst:``/``Style:``
    tokens, ``none`` left out) that occur in the training ``pieces``; empty for tokenizers without them.
    ``compose`` refuses a control the model never saw, naming these."""
    prefixes = tuple(CONTROL_BLOCKS)
    wanted = {i: token for i, token in enumerate(tokenizer.vocab)
              if token.startswith(prefixes) and not token.endswith(":none")}
    if not wanted or not pieces:
        return {}
    seen = np.unique(np.concatenate([np.asarray(p.ids, dtype=np.int64) for p in pieces]))
    found: dict[str, list[str]] = {name: [] for name in CONTROL_BLOCKS.values()}
    for i in seen.tolist():
        if i in wanted:
            prefix = next(p for p in prefixes if wanted[i].startswith(p))
            found[CONTROL_BLOCKS[prefix]].append(wanted[i][len(prefix):])
    order = {"trained_instruments": lambda v: (v == "drums", int(v) if v.isdigit() else 0), "trained_styles": str}
    return {name: sorted(values, key=order[name]) for name, values in found.items()}


def _knows_section(metrics: dict) -> str:
    if not metrics.get("trained_instruments") and not metrics.get("trained_styles"):
        return ""
    import pretty_midi

    names = [f"{v} ({'drums' if v == 'drums' else pretty_midi.program_to_instrument_name(int(v))})"
             for v in metrics.get("trained_instruments", [])]
    return (f"""
## What it knows

- Styles (`--style`): {', '.join(metrics.get('trained_styles', [])) or 'none'}.
- Instruments (`--instruments`, GM programs): {', '.join(names) or 'none'}.
- `ostinato compose` refuses a style or instrument outside these, before the model loads.
""")


def _hardware(metrics: dict) -> str:
    """Where the steps ran, in how many processes and in what arithmetic (not recorded before --precision)."""
    precision = {"bf16": ", bfloat16 autocast", "fp32": ", float32"}.get(metrics.get("precision"), "")
    return f"{metrics['device']} ({metrics['n_processes']} process(es)){precision}"


def model_card(metrics: dict, tokenizer, data: TokenData) -> str:
    """The model card (markdown): what was trained on what, how, and how well on held-out pieces."""
    heldout = metrics["heldout"]
    figures = "\n".join(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in heldout.items())
    model = metrics["model"]
    train = metrics["train"]
    return f"""# {metrics['name']}

A {model['architecture'].upper()} decoder ({model['n_layers']} layers, width {model['d_model']},
{model['n_heads']} heads, context {model['context']} tokens, {metrics['n_parameters']:,} parameters)
over `{tokenizer.kind}` tokens ({len(tokenizer)} in the vocabulary), trained by ostinato.

## Command

{_command_block(metrics)}

## Data

- Source: `{metrics['source']}`; held-out split of DESIGN.md (sha256 of the piece key, first byte < 13).
- Training: {metrics['n_train_pieces']:,} sequences, {metrics['n_train_tokens']:,} tokens
  (unigram entropy {metrics['unigram_bits_per_token']:.3f} bits per token).
- Held out: {metrics['n_test_pieces']:,} sequences. Pieces that could not be used: {metrics['n_failed_pieces']:,}.

## Training

- {metrics['steps']:,} steps of {train['batch_size']} {_windows(metrics)},
  AdamW (peak learning rate {train['learning_rate']}, {train['warmup_steps']} warm-up steps, cosine decay to
  {train['min_lr_ratio']}x, weight decay {train['weight_decay']},
  gradient clipping {train['grad_clip']}), seed {train['seed']}.{_init_line(metrics)}{_infill_line(metrics)}\
{_transpose_line(metrics)}{_ensembles_line(metrics)}{_expand_line(metrics)}{_distill_line(metrics)}\
{_left_out_line(metrics)}
- Wall time {metrics['elapsed_s']:.0f} s on {_hardware(metrics)}.

## Held-out figures (final step)

| figure | value |
|---|---|
{figures}

Bits per character are over the normalised ABC text of each held-out tune; bits per note over
the notes the held-out sequences encode. A piece longer than the context is scored by windows sliding half
a context at a time: each token predicted once, with at least half a context before it. `ostinato evaluate
nll` recomputes them.
{_knows_section(metrics)}"""
