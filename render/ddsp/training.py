"""Training a DDSP renderer on (notes, audio) pairs: multi-resolution STFT loss, AdamW,
held-out loss, atomic checkpoints (safetensors + JSON), exact resume, CUDA when present.

The loop, checkpoints and folder layout are :mod:`render.training_common`'s (shared with the
wavenet engine): ``out_dir`` holds the best model (``--model out_dir``), ``checkpoint/`` and
``train_log.jsonl``. Training segments are drawn by a generator seeded with ``(seed, step)``,
so a resumed run continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import training_common as common
from ..model_folder import save_model
from ..spectral import multi_resolution_stft_loss
from ..training_common import CHECKPOINT_DIR, LOG_FILE, TrainConfig
from .config import DDSPConfig
from .features import Voices, chunk_voices, voices_of
from .model import DDSPModel

__all__ = ["CHECKPOINT_DIR", "LOG_FILE", "PieceData", "TrainConfig", "prepare", "train"]

WARMUP_S = 0.25  # synthesis starts this long before a training segment (earlier notes' release and reverb)


@dataclass
class PieceData:
    """A pair prepared for training: its voices and target audio at the native rate."""

    key: str
    voices: Voices
    audio: torch.Tensor  # [n_samples] float32
    n_frames: int


def prepare(pairs, config: DDSPConfig) -> list[PieceData]:
    """Voices and audio of ``pairs`` (each with .key, .table, .audio at the model's native rate)."""
    out = []
    for pair in pairs:
        audio = torch.from_numpy(np.asarray(pair.audio, dtype=np.float32))
        n_frames = audio.shape[0] // config.hop_samples
        if n_frames > 0:
            out.append(PieceData(pair.key, voices_of(pair.table, config), audio, n_frames))
    return out


def trained_instruments(pairs) -> list[int]:
    """Instrument indices (program, or 128 + drum key) that sound in ``pairs``."""
    found: set[int] = set()
    for pair in pairs:
        t = pair.table
        found.update(np.where(t.is_drum, 128 + t.pitch.astype(np.int64), t.program.astype(np.int64)).tolist())
    return sorted(found)


def predict_segment(model: DDSPModel, piece: PieceData, start_frame: int, n_frames: int) -> torch.Tensor:
    """The model's audio for frames ``[start_frame, start_frame + n_frames)`` of ``piece``: [n_frames * hop].

    Synthesis starts up to one reverb length earlier, so the reverb tail of earlier notes is there.
    """
    c = model.config
    warm = math.ceil(min(c.reverb_s, WARMUP_S) * c.frame_rate_hz)
    first = max(0, start_frame - warm)
    total = start_frame + n_frames - first
    voices = chunk_voices(piece.voices, first, first + total + 1)
    dry = model.dry(voices, first, total)  # [2, n]: dry mix, reverb send
    wet = model.mix(dry)[: dry.shape[-1]]
    return wet[(start_frame - first) * c.hop_samples:]


def segment_loss(model: DDSPModel, pieces: list[PieceData], picks: list[tuple[int, int]], n_frames: int
                 ) -> torch.Tensor:
    """Multi-resolution STFT loss of the model on segments ``(piece index, start frame)``."""
    hop = model.config.hop_samples
    predicted = torch.stack([predict_segment(model, pieces[i], s, n_frames) for i, s in picks])
    target = torch.stack([pieces[i].audio[s * hop:(s + n_frames) * hop] for i, s in picks]).to(predicted.device)
    return multi_resolution_stft_loss(predicted, target)


def draw_segments(pieces: list[PieceData], n: int, n_frames: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """``n`` random (piece, start frame) picks, pieces weighted by length."""
    return common.draw_segments([p.n_frames for p in pieces], n, n_frames, rng)


def eval_segments(pieces: list[PieceData], per_piece: int, n_frames: int) -> list[tuple[int, int]]:
    """Fixed, evenly spaced held-out segments (the same at every evaluation)."""
    return common.eval_segments([p.n_frames for p in pieces], per_piece, n_frames)


def train(model_config: DDSPConfig, train_pairs, heldout_pairs, out_dir: str | os.PathLike,
          train_config: TrainConfig, *, resume: bool = False, progress: bool = True,
          log=print, init_state: dict | None = None) -> dict:
    """Train (or resume) a DDSP model; returns the final state (step, losses, best held-out loss).

    Args:
        model_config: sizes; its ``trained_instruments`` is filled from the training pairs.
        train_pairs, heldout_pairs: objects with ``.key``, ``.table``, ``.audio`` (mono, native rate).
        resume: continue from ``out_dir/checkpoint`` (its config wins; ``steps`` may be raised).
        init_state: weights a new run starts from (a ``state_dict`` of a model of ``model_config``, loaded
            strictly; :func:`render.ddsp.model.fit_state` fits another model's to it).
    """
    out = Path(out_dir)
    run = common.start_run(out_dir=out, model_config=model_config, train_config=train_config, resume=resume,
                           train_pairs=train_pairs, heldout_pairs=heldout_pairs, build_model=DDSPModel,
                           prepare=prepare, trained_instruments=trained_instruments, init_state=init_state)
    model, model_config, train_data, heldout_data = run.model, run.model_config, run.train_data, run.heldout_data
    n_frames = max(1, round(train_config.segment_s * model_config.frame_rate_hz))
    picks = eval_segments(heldout_data, train_config.n_eval_segments, n_frames)

    def batch_loss(step: int) -> torch.Tensor:
        batch = draw_segments(train_data, train_config.batch_size, n_frames, common.step_rng(train_config.seed, step))
        return segment_loss(model, train_data, batch, n_frames)

    def heldout_loss() -> float:
        return common.heldout_loss(model, lambda batch: segment_loss(model, heldout_data, batch, n_frames), picks,
                                   train_config.batch_size)

    return common.fit(model=model, optimizer=run.optimizer, out_dir=out, train_config=train_config, state=run.state,
                      batch_loss=batch_loss,
                      heldout_loss=heldout_loss,
                      save_model=save_model, resume=resume, desc="train ddsp", progress=progress, log=log)
