"""Training a WaveNet renderer on (notes, audio) pairs: teacher forcing on random segments,
cross-entropy (mu-law) or discretized-logistic-mixture likelihood, AdamW, bf16 autocast on CUDA.

The loop, checkpoints (safetensors + JSON, exact resume) and the folder layout are
:mod:`render.training_common`'s, as for the ddsp engine. The model folder also gets a
``model_card.md`` each time the best model is saved. Losses are nats per sample.
"""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import training_common as common
from ..instruments import instrument_map
from ..model_folder import CARD_FILE, save_model
from ..training_common import CHECKPOINT_DIR, LOG_FILE, TrainConfig
from . import output
from .conditioning import Conditioning, conditioning_of, instrument_of
from .config import WaveNetConfig
from .model import WaveNet, count_parameters

__all__ = ["CHECKPOINT_DIR", "LOG_FILE", "PieceData", "TrainConfig", "prepare", "train"]


@dataclass
class PieceData:
    """A pair prepared for training: its conditioning and its audio at the native rate."""

    key: str
    conditioning: Conditioning
    audio: torch.Tensor  # [n_samples] float32

    @property
    def n_samples(self) -> int:
        return int(self.audio.shape[0])


def prepare(pairs, config: WaveNetConfig) -> list[PieceData]:
    """Conditioning and audio of ``pairs`` (each with .key, .table, .audio at the model's native rate)."""
    mapping = instrument_map(config.trained_instruments)
    out = []
    for pair in pairs:
        audio = torch.from_numpy(np.asarray(pair.audio, dtype=np.float32))
        if audio.shape[0] > 0:
            out.append(PieceData(pair.key, conditioning_of(pair.table, config.frame_rate_hz, mapping), audio))
    return out


def trained_instruments(pairs) -> list[int]:
    """Instrument indices (program, or 128 for drums) that sound in ``pairs``."""
    found: set[int] = set()
    for pair in pairs:
        found.update(instrument_of(pair.table).tolist())
    return sorted(found)


def segment_batch(model: WaveNet, pieces: list[PieceData], picks: list[tuple[int, int]], n_samples: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Teacher-forcing inputs for segments ``(piece, start sample)`` of ``n_samples``.

    The network sees ``receptive_field`` samples of true context before each segment (silence
    before a piece starts). Returns (inputs [B, 1, RF + n], condition [B, C, RF + n], target audio [B, n]).
    """
    rf = model.config.receptive_field
    audio = torch.zeros(len(picks), rf + n_samples + 1)
    condition = []
    for row, (i, start) in enumerate(picks):
        piece = pieces[i]
        first = start - rf - 1  # the sample before the window's first position
        a, b = max(first, 0), min(start + n_samples, piece.n_samples)
        if b > a:
            audio[row, a - first:b - first] = piece.audio[a:b]
        condition.append(model.condition(piece.conditioning, start - rf, rf + n_samples))
    device = model.device
    inputs = output.network_input(audio[:, :-1], model.config)[:, None]  # [B, 1, RF + n]: input p = sample p - 1
    return inputs.to(device), torch.stack(condition), audio[:, rf + 1:].to(device)


def segment_loss(model: WaveNet, pieces: list[PieceData], picks: list[tuple[int, int]], n_samples: int
                 ) -> torch.Tensor:
    """Mean nats per sample of the segments' audio under the model (teacher forcing)."""
    rf = model.config.receptive_field
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if model.device.type == "cuda"
                else contextlib.nullcontext())
    with autocast:
        inputs, condition, target = segment_batch(model, pieces, picks, n_samples)
        params = model(inputs, condition)[:, :, rf:]  # [B, n_outputs, n]
    return output.loss(params, target, model.config)


def model_card(model: WaveNet, state: dict, summary: dict) -> str:
    """A short model card: what the model is, what it was trained on, its held-out loss."""
    c = model.config
    kind = (f"{c.n_classes}-class mu-law softmax" if c.output == "mulaw"
            else f"mixture of {c.n_mixtures} discretized logistics ({c.mol_bits}-bit)")
    t = state["train_config"]
    lines = [
        "# WaveNet renderer (ostinato)", "",
        f"A piano-roll-conditioned WaveNet ({count_parameters(model):,} parameters): {c.n_layers} dilated causal "
        f"layers (dilations 1..{2 ** (min(c.dilation_cycle, c.n_layers) - 1)}, kernel {c.kernel_size}), "
        f"{c.residual_channels} residual / {c.gate_channels} gate / {c.skip_channels} skip channels, receptive "
        f"field {c.receptive_field} samples ({1000 * c.receptive_field / c.sample_rate_hz:.0f} ms); output {kind}; "
        f"native rate {c.sample_rate_hz} Hz, piano roll at {c.frame_rate_hz:g} frames/s upsampled by "
        f"{' x '.join(map(str, c.upsample_factors))}.", "",
        "Render with `ostinato render IN -o OUT.wav --engine wavenet --model THIS_FOLDER` (see "
        "render/wavenet/MODEL_CARD.md for speed and limits).", "",
        "## Training", "",
        f"- data: {summary['n_train']} training pieces ({summary['train_minutes']:.1f} min of audio), "
        f"{summary['n_heldout']} held out (the project's split); instruments {c.trained_instruments}",
        f"- step {state['step']} of {t['steps']}: batch {t['batch_size']} x {t['segment_s']} s segments, "
        f"AdamW lr {t['learning_rate']}, seed {t['seed']}; {state['wall_s'] / 60:.1f} min of step time",
        f"- held-out loss (nats/sample): {state['first_heldout_loss']:.4f} at step 0, "
        f"best {state['best_heldout_loss']:.4f} (step {state.get('best_step', state['step'])}; these weights)",
        f"- trained on {summary['device']} with torch {torch.__version__}, Python {platform.python_version()}", "",
    ]
    return "\n".join(lines)


def train(model_config: WaveNetConfig, train_pairs, heldout_pairs, out_dir: str | os.PathLike,
          train_config: TrainConfig, *, resume: bool = False, progress: bool = True, log=print) -> dict:
    """Train (or resume) a WaveNet renderer; returns the final state (step, losses, best held-out loss).

    Args:
        model_config: sizes; its ``trained_instruments`` is filled from the training pairs.
        train_pairs, heldout_pairs: objects with ``.key``, ``.table``, ``.audio`` (mono, native rate).
        resume: continue from ``out_dir/checkpoint`` (its config wins; ``steps`` may be raised).
    """
    out = Path(out_dir)
    run = common.start_run(out_dir=out, model_config=model_config, train_config=train_config, resume=resume,
                           train_pairs=train_pairs, heldout_pairs=heldout_pairs, build_model=WaveNet,
                           prepare=prepare, trained_instruments=trained_instruments)
    model, model_config, train_data, heldout_data = run.model, run.model_config, run.train_data, run.heldout_data
    state, device = run.state, run.device
    n_samples = max(1, round(train_config.segment_s * model_config.sample_rate_hz))
    picks = common.eval_segments([p.n_samples for p in heldout_data], train_config.n_eval_segments, n_samples)
    lengths = [p.n_samples for p in train_data]
    summary = {"n_train": len(train_data), "n_heldout": len(heldout_data), "device": str(device),
               "train_minutes": sum(lengths) / model_config.sample_rate_hz / 60}

    def batch_loss(step: int) -> torch.Tensor:
        rng = common.step_rng(train_config.seed, step)
        batch = common.draw_segments(lengths, train_config.batch_size, n_samples, rng)
        return segment_loss(model, train_data, batch, n_samples)

    def heldout_loss() -> float:
        return common.heldout_loss(model, lambda batch: segment_loss(model, heldout_data, batch, n_samples), picks,
                                   train_config.batch_size)

    def save(net: WaveNet, directory: Path) -> None:
        save_model(net, directory)
        if directory == out:
            from ostinato.events.atomic import write_text_atomic

            write_text_atomic(directory / CARD_FILE, model_card(net, state, summary))

    return common.fit(model=model, optimizer=run.optimizer, out_dir=out, train_config=train_config, state=state,
                      batch_loss=batch_loss,
                      heldout_loss=heldout_loss,
                      save_model=save, resume=resume, desc="train wavenet", progress=progress, log=log)
