"""Training a DDSP renderer on (notes, audio) pairs: multi-resolution STFT loss, AdamW,
held-out loss, atomic checkpoints (safetensors + JSON), exact resume, CUDA when present.

Layout of ``out_dir``::

    model.safetensors, config.json   the best model so far (lowest held-out loss): ``--model out_dir``
    checkpoint/                      the latest state: model, config, optimizer.safetensors, state.json
    train_log.jsonl                  one JSON line per evaluation

Training segments are drawn by a generator seeded with ``(seed, step)``, so a resumed run
continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..spectral import multi_resolution_stft_loss
from .config import DDSPConfig
from .engine import CONFIG_FILE, WEIGHTS_FILE, save_model
from .features import Voices, chunk_voices, voices_of
from .model import DDSPModel

CHECKPOINT_DIR = "checkpoint"
LOG_FILE = "train_log.jsonl"
WARMUP_S = 0.25  # synthesis starts this long before a training segment (earlier notes' release and reverb)


@dataclass
class TrainConfig:
    """Optimisation settings (validated; saved in the checkpoint's state.json)."""

    steps: int = 2000
    batch_size: int = 8
    segment_s: float = 1.0
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    eval_every: int = 100
    seed: int = 0
    device: str = "auto"
    n_eval_segments: int = 4

    def __post_init__(self) -> None:
        checks = {
            "steps": self.steps >= 0, "batch_size": self.batch_size >= 1, "segment_s": 0.05 <= self.segment_s <= 30,
            "learning_rate": 0 < self.learning_rate < 1, "weight_decay": 0 <= self.weight_decay < 1,
            "grad_clip": self.grad_clip > 0, "eval_every": self.eval_every >= 1, "seed": self.seed >= 0,
            "device": self.device in ("auto", "cpu", "cuda"), "n_eval_segments": self.n_eval_segments >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"TrainConfig.{name} is out of range: got {getattr(self, name)!r}")


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
    dry = model.dry(voices, first, total)
    wet = model.reverb(dry)[: dry.shape[0]]
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
    lengths = np.array([max(p.n_frames - n_frames, 1) for p in pieces], dtype=np.float64)
    chosen = rng.choice(len(pieces), size=n, p=lengths / lengths.sum())
    return [(int(i), int(rng.integers(0, max(pieces[i].n_frames - n_frames, 0) + 1))) for i in chosen]


def eval_segments(pieces: list[PieceData], per_piece: int, n_frames: int) -> list[tuple[int, int]]:
    """Fixed, evenly spaced held-out segments (the same at every evaluation)."""
    picks = []
    for i, piece in enumerate(pieces):
        span = max(piece.n_frames - n_frames, 0)
        for j in range(per_piece):
            picks.append((i, int(span * (j + 0.5) / per_piece)))
    return picks


def heldout_loss(model: DDSPModel, pieces: list[PieceData], picks: list[tuple[int, int]], n_frames: int,
                 batch_size: int) -> float:
    """Mean multi-resolution STFT loss over held-out segments."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for a in range(0, len(picks), batch_size):
            batch = picks[a:a + batch_size]
            total += float(segment_loss(model, pieces, batch, n_frames)) * len(batch)
            count += len(batch)
    model.train()
    return total / max(count, 1)


def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def save_checkpoint(directory: Path, model: DDSPModel, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Model, optimizer (safetensors) and state (JSON), each written atomically; state.json last."""
    from safetensors.torch import save

    from events.atomic import write_bytes_atomic, write_text_atomic

    save_model(model, directory)
    opt = optimizer.state_dict()
    tensors = {}
    for pid, entry in opt["state"].items():
        for name, value in entry.items():
            tensors[f"{pid}.{name}"] = (value if torch.is_tensor(value) else torch.tensor(value)).detach().cpu()
    write_bytes_atomic(directory / "optimizer.safetensors", save(tensors))
    state = dict(state, param_groups=opt["param_groups"])
    write_text_atomic(directory / "state.json", json.dumps(state, indent=2) + "\n")


def load_checkpoint(directory: Path, model: DDSPModel, optimizer: torch.optim.Optimizer) -> dict:
    """Restore model and optimizer from ``directory``; returns the state dict of state.json."""
    from safetensors.torch import load_file

    state = json.loads((directory / "state.json").read_text())
    model.load_state_dict(load_file(directory / WEIGHTS_FILE))
    tensors = load_file(directory / "optimizer.safetensors")
    entries: dict[int, dict] = {}
    for name, value in tensors.items():
        pid, field = name.split(".", 1)
        entries.setdefault(int(pid), {})[field] = value.to(model.device)
    optimizer.load_state_dict({"state": entries, "param_groups": state["param_groups"]})
    return state


def train(model_config: DDSPConfig, train_pairs, heldout_pairs, out_dir: str | os.PathLike,
          train_config: TrainConfig, *, resume: bool = False, progress: bool = True,
          log=print) -> dict:
    """Train (or resume) a DDSP model; returns the final state (step, losses, best held-out loss).

    Args:
        model_config: sizes; its ``trained_instruments`` is filled from the training pairs.
        train_pairs, heldout_pairs: objects with ``.key``, ``.table``, ``.audio`` (mono, native rate).
        resume: continue from ``out_dir/checkpoint`` (its config wins; ``steps`` may be raised).
    """
    out = Path(out_dir)
    checkpoint = out / CHECKPOINT_DIR
    torch.manual_seed(train_config.seed)
    if resume:
        if not (checkpoint / "state.json").is_file():
            from events import InputError

            raise InputError(checkpoint, "no checkpoint to resume from (state.json missing)")
        model_config = DDSPConfig.from_json((checkpoint / CONFIG_FILE).read_text())
    else:
        model_config = dataclasses.replace(model_config, trained_instruments=trained_instruments(train_pairs))
    device = _device(train_config.device)
    model = DDSPModel(model_config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_config.learning_rate,
                                  weight_decay=train_config.weight_decay)
    state = {"step": 0, "best_heldout_loss": None, "train_config": dataclasses.asdict(train_config),
             "wall_s": 0.0, "first_heldout_loss": None}
    if resume:
        saved = load_checkpoint(checkpoint, model, optimizer)
        state.update({k: saved[k] for k in ("step", "best_heldout_loss", "wall_s", "first_heldout_loss")})
        for group in optimizer.param_groups:
            group["lr"] = train_config.learning_rate
    train_data = prepare(train_pairs, model_config)
    heldout_data = prepare(heldout_pairs, model_config)
    if not train_data:
        raise ValueError("no training pieces (every piece is held out, empty or unreadable)")
    if not heldout_data:
        raise ValueError("no held-out pieces: give a source with more pieces (about 5% are held out)")
    n_frames = max(1, round(train_config.segment_s * model_config.frame_rate_hz))
    picks = eval_segments(heldout_data, train_config.n_eval_segments, n_frames)

    def evaluate_and_save(step: int, train_loss: float | None) -> None:
        loss = heldout_loss(model, heldout_data, picks, n_frames, train_config.batch_size)
        if state["first_heldout_loss"] is None:
            state["first_heldout_loss"] = loss
        if state["best_heldout_loss"] is None or loss < state["best_heldout_loss"]:
            state["best_heldout_loss"] = loss
            save_model(model, out)
        record = {"step": step, "heldout_loss": round(loss, 5), "train_loss": train_loss,
                  "wall_s": round(state["wall_s"], 1)}
        with open(out / LOG_FILE, "a") as f:
            f.write(json.dumps(record) + "\n")
        state["step"] = step
        save_checkpoint(checkpoint, model, optimizer, state)
        log(f"step {step}: held-out loss {loss:.4f} (best {state['best_heldout_loss']:.4f})")

    out.mkdir(parents=True, exist_ok=True)
    if state["step"] == 0 and not resume:
        evaluate_and_save(0, None)
    from tqdm import tqdm

    bar = tqdm(range(state["step"], train_config.steps), initial=state["step"], total=train_config.steps,
               disable=not progress, desc="train ddsp", unit="step")
    running: list[float] = []
    for step in bar:
        started = time.perf_counter()
        rng = np.random.default_rng([train_config.seed, step])
        batch = draw_segments(train_data, train_config.batch_size, n_frames, rng)
        loss = segment_loss(model, train_data, batch, n_frames)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_config.grad_clip)
        optimizer.step()
        running.append(float(loss.detach()))
        state["wall_s"] += time.perf_counter() - started
        bar.set_postfix(loss=f"{np.mean(running[-20:]):.4f}")
        if (step + 1) % train_config.eval_every == 0 or step + 1 == train_config.steps:
            evaluate_and_save(step + 1, round(float(np.mean(running)), 5))
            running.clear()
    bar.close()
    if state["step"] < train_config.steps or train_config.steps == 0:
        evaluate_and_save(max(state["step"], train_config.steps), None)
    return state
