"""What every renderer's training shares: the optimisation settings, segment picks, checkpoints
(safetensors + JSON, written atomically, exact resume) and the loop with held-out evaluation.

An engine's ``training`` module calls :func:`start_run` (config, model, optimizer, state and
data, fresh or resumed), then hands :func:`fit` a function that gives the loss of one training
batch and one that gives the held-out loss (:func:`heldout_loss` over fixed segments).

Layout of ``out_dir``::

    model.safetensors, config.json   the best model so far (lowest held-out loss): ``--model out_dir``
    checkpoint/                      the latest state: model, config, optimizer.safetensors, state.json
    train_log.jsonl                  one JSON line per evaluation

Training batches should be drawn from a generator seeded with ``(seed, step)`` (:func:`step_rng`),
so that a resumed run continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .model_folder import CONFIG_FILE, WEIGHTS_FILE

CHECKPOINT_DIR = "checkpoint"
LOG_FILE = "train_log.jsonl"
STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.safetensors"


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


def pick_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The generator of one training step's random picks (a function of seed and step only)."""
    return np.random.default_rng([seed, step])


def draw_segments(lengths: list[int], n: int, length: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """``n`` random (piece, start) picks of segments of ``length`` units, pieces weighted by length.

    Args:
        lengths: each piece's length (frames or samples).
    """
    usable = np.array([max(size - length, 1) for size in lengths], dtype=np.float64)
    chosen = rng.choice(len(lengths), size=n, p=usable / usable.sum())
    return [(int(i), int(rng.integers(0, max(lengths[i] - length, 0) + 1))) for i in chosen]


def eval_segments(lengths: list[int], per_piece: int, length: int) -> list[tuple[int, int]]:
    """Fixed, evenly spaced held-out segments (the same at every evaluation)."""
    picks = []
    for i, size in enumerate(lengths):
        span = max(size - length, 0)
        for j in range(per_piece):
            picks.append((i, int(span * (j + 0.5) / per_piece)))
    return picks


def heldout_loss(model: torch.nn.Module, segment_loss: Callable[[list[tuple[int, int]]], torch.Tensor],
                 picks: list[tuple[int, int]], batch_size: int) -> float:
    """Mean of ``segment_loss`` over the held-out segments ``picks``, ``batch_size`` at a time, in eval mode.

    Args:
        segment_loss: the engine's mean loss of a batch of (piece, start) segments.
    """
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for a in range(0, len(picks), batch_size):
            batch = picks[a:a + batch_size]
            total += float(segment_loss(batch)) * len(batch)
            count += len(batch)
    model.train()
    return total / max(count, 1)


def save_checkpoint(directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict,
                    save_model: Callable[[torch.nn.Module, Path], None]) -> None:
    """Model (``save_model``), optimizer (safetensors) and state (JSON), each written atomically; state.json last."""
    from safetensors.torch import save

    from ostinato.events.atomic import write_bytes_atomic, write_text_atomic

    save_model(model, directory)
    opt = optimizer.state_dict()
    tensors = {}
    for pid, entry in opt["state"].items():
        for name, value in entry.items():
            tensors[f"{pid}.{name}"] = (value if torch.is_tensor(value) else torch.tensor(value)).detach().cpu()
    write_bytes_atomic(directory / OPTIMIZER_FILE, save(tensors))
    state = dict(state, param_groups=opt["param_groups"])
    write_text_atomic(directory / STATE_FILE, json.dumps(state, indent=2) + "\n")


def load_checkpoint(directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Restore model and optimizer from ``directory`` (safetensors and JSON only); returns state.json's dict."""
    from safetensors.torch import load_file

    state = json.loads((directory / STATE_FILE).read_text())
    device = next(model.parameters()).device
    model.load_state_dict(load_file(directory / WEIGHTS_FILE))
    tensors = load_file(directory / OPTIMIZER_FILE)
    entries: dict[int, dict] = {}
    for name, value in tensors.items():
        pid, field = name.split(".", 1)
        entries.setdefault(int(pid), {})[field] = value.to(device)
    optimizer.load_state_dict({"state": entries, "param_groups": state["param_groups"]})
    return state


def require_checkpoint(out_dir: Path) -> Path:
    """``out_dir/checkpoint``, or an InputError when there is nothing to resume from."""
    checkpoint = Path(out_dir) / CHECKPOINT_DIR
    if not (checkpoint / STATE_FILE).is_file():
        from ostinato.events import InputError

        raise InputError(checkpoint, f"no checkpoint to resume from ({STATE_FILE} missing)")
    return checkpoint


def new_state(train_config) -> dict:
    import dataclasses

    return {"step": 0, "best_heldout_loss": None, "train_config": dataclasses.asdict(train_config), "wall_s": 0.0,
            "first_heldout_loss": None}


def resume_state(checkpoint: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 train_config: TrainConfig) -> dict:
    """The state of a resumed run: model and optimizer restored; the new learning rate applies."""
    state = new_state(train_config)
    saved = load_checkpoint(checkpoint, model, optimizer)
    state.update({k: saved[k] for k in ("step", "best_heldout_loss", "wall_s", "first_heldout_loss")})
    state.update({k: saved[k] for k in ("best_step", "heldout_loss") if k in saved})
    for group in optimizer.param_groups:
        group["lr"] = train_config.learning_rate
    return state


@dataclass
class Run:
    """A run ready for :func:`fit`: the model (on its device, in training mode) and everything around it."""

    model_config: object
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    state: dict
    train_data: list
    heldout_data: list
    device: torch.device


def start_run(*, out_dir: Path, model_config, train_config: TrainConfig, resume: bool, train_pairs, heldout_pairs,
              build_model: Callable[[object], torch.nn.Module], prepare: Callable[[list, object], list],
              trained_instruments: Callable[[list], list[int]], init_state: dict | None = None) -> Run:
    """Set up a run: a new one, or the one in ``out_dir/checkpoint`` when ``resume`` (its config wins).

    Args:
        model_config: the engine's config dataclass (with ``from_json`` and a ``trained_instruments``
            field, filled here from ``train_pairs`` for a new run).
        build_model: the engine's model from a config; ``prepare``: its training data from pairs.
        init_state: weights a new run starts from (loaded strictly; ignored when resuming).
    Raises ValueError when no training or no held-out piece is left after ``prepare``.
    """
    import dataclasses

    torch.manual_seed(train_config.seed)
    checkpoint = require_checkpoint(out_dir) if resume else None
    if checkpoint is not None:
        model_config = type(model_config).from_json((checkpoint / CONFIG_FILE).read_text())
    else:
        model_config = dataclasses.replace(model_config, trained_instruments=trained_instruments(train_pairs))
    device = pick_device(train_config.device)
    model = build_model(model_config)
    if init_state is not None and checkpoint is None:
        model.load_state_dict(init_state)
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_config.learning_rate,
                                  weight_decay=train_config.weight_decay)
    if checkpoint is not None:
        state = resume_state(checkpoint, model, optimizer, train_config)
    else:
        state = new_state(train_config)
    train_data = prepare(train_pairs, model_config)
    heldout_data = prepare(heldout_pairs, model_config)
    if not train_data:
        raise ValueError("no training pieces (every piece is held out, empty or unreadable)")
    if not heldout_data:
        raise ValueError("no held-out pieces: give a source with more pieces (about 5% are held out)")
    return Run(model_config, model, optimizer, state, train_data, heldout_data, device)


def fit(*, model: torch.nn.Module, optimizer: torch.optim.Optimizer, out_dir: Path, train_config: TrainConfig,
        state: dict, batch_loss: Callable[[int], torch.Tensor], heldout_loss: Callable[[], float],
        save_model: Callable[[torch.nn.Module, Path], None], resume: bool, desc: str, progress: bool = True,
        log=print, extra_record: Callable[[], dict] | None = None) -> dict:
    """The training loop shared by the engines; returns the final state.

    Args:
        batch_loss: the (differentiable) loss of training step ``step``'s batch.
        heldout_loss: the mean held-out loss of the current model (no gradients needed).
        save_model: writes the model folder (weights + config) into a directory.
        extra_record: more fields for each line of train_log.jsonl.
    Every ``eval_every`` steps and at the end: held-out loss, log line, best model, checkpoint.
    """
    out = Path(out_dir)
    checkpoint = out / CHECKPOINT_DIR

    def evaluate_and_save(step: int, train_loss: float | None) -> None:
        loss = heldout_loss()
        state["step"] = step
        state["heldout_loss"] = loss
        if state["first_heldout_loss"] is None:
            state["first_heldout_loss"] = loss
        if state["best_heldout_loss"] is None or loss < state["best_heldout_loss"]:
            state["best_heldout_loss"] = loss
            state["best_step"] = step
            save_model(model, out)
        record = {"step": step, "heldout_loss": round(loss, 5), "train_loss": train_loss,
                  "wall_s": round(state["wall_s"], 1), **(extra_record() if extra_record else {})}
        with open(out / LOG_FILE, "a") as f:
            f.write(json.dumps(record) + "\n")
        save_checkpoint(checkpoint, model, optimizer, state, save_model)
        log(f"step {step}: held-out loss {loss:.4f} (best {state['best_heldout_loss']:.4f})")

    out.mkdir(parents=True, exist_ok=True)
    if state["step"] == 0 and not resume:
        evaluate_and_save(0, None)
    from tqdm import tqdm

    bar = tqdm(range(state["step"], train_config.steps), initial=state["step"], total=train_config.steps,
               disable=not progress, desc=desc, unit="step")
    running: list[float] = []
    for step in bar:
        started = time.perf_counter()
        loss = batch_loss(step)
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
