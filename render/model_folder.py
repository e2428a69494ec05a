"""A neural renderer's model folder: ``model.safetensors`` + ``config.json`` (+ ``model_card.md``).

Shared by the ddsp and wavenet engines; shipped folders live in ``render/pretrained/<name>/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

PRETRAINED = Path(__file__).resolve().parent / "pretrained"
WEIGHTS_FILE, CONFIG_FILE, CARD_FILE = "model.safetensors", "config.json", "model_card.md"


def model_dir(model: str | os.PathLike) -> Path:
    """The folder of ``model``: a path, or the name of a model under render/pretrained/."""
    path = Path(model)
    if not path.exists() and (PRETRAINED / str(model)).is_dir():
        path = PRETRAINED / str(model)
    return path


def save_model(model: torch.nn.Module, directory: str | os.PathLike) -> None:
    """Write ``model.safetensors`` and ``config.json`` (``model.config.to_json()``) into ``directory``,
    each atomically."""
    from safetensors.torch import save

    from ostinato.events.atomic import write_bytes_atomic, write_text_atomic

    directory = Path(directory)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    write_bytes_atomic(directory / WEIGHTS_FILE, save(state))
    write_text_atomic(directory / CONFIG_FILE, model.config.to_json() + "\n")
