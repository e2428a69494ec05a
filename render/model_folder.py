"""A neural renderer's model folder: ``model.safetensors`` + ``config.json`` (+ ``model_card.md``).

Shared by the ddsp and wavenet engines; shipped folders live in ``render/pretrained/<name>/``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PRETRAINED = Path(__file__).resolve().parent / "pretrained"
WEIGHTS_FILE, CONFIG_FILE, CARD_FILE = "model.safetensors", "config.json", "model_card.md"


def model_dir(model: str | os.PathLike) -> Path:
    """The folder of ``model``: a path, or the name of a model under render/pretrained/."""
    path = Path(model)
    if not path.exists() and (PRETRAINED / str(model)).is_dir():
        path = PRETRAINED / str(model)
    return path


def load_model_folder(model: str | os.PathLike, *, config_class, build: Callable[[object], torch.nn.Module],
                      engine: str) -> torch.nn.Module:
    """The model of a folder (or shipped name), in eval mode: safetensors + JSON only, nothing is unpickled.

    Args:
        config_class: the engine's config dataclass (with ``from_json``); build: its model from a config.
        engine: the engine's name, for messages.
    Raises:
        events.InputError: not a model folder, or its config or weights do not load (the reason given).
    """
    from safetensors.torch import load_file

    from ostinato.events import InputError

    path = model_dir(model)
    weights, config_path = path / WEIGHTS_FILE, path / CONFIG_FILE
    if not weights.is_file() or not config_path.is_file():
        raise InputError(path, f"not a {engine} model folder (needs {WEIGHTS_FILE} and {CONFIG_FILE})")
    try:
        net = build(config_class.from_json(config_path.read_text()))
        net.load_state_dict(load_file(weights))
    except (ValueError, TypeError, RuntimeError, OSError) as exc:
        raise InputError(path, f"cannot load {engine} model: {exc}") from exc
    return net.eval()


def save_model(model: torch.nn.Module, directory: str | os.PathLike) -> None:
    """Write ``model.safetensors`` and ``config.json`` (``model.config.to_json()``) into ``directory``,
    each atomically."""
    from safetensors.torch import save

    from ostinato.events.atomic import write_bytes_atomic, write_text_atomic

    directory = Path(directory)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    write_bytes_atomic(directory / WEIGHTS_FILE, save(state))
    write_text_atomic(directory / CONFIG_FILE, model.config.to_json() + "\n")
