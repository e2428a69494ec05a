"""The models that ship with ostinato (``symbolic/pretrained/<name>/``) and how a name is resolved.

``--model NAME|DIR``: a name of a shipped model, or the path of any model folder that
``ostinato train symbolic`` wrote.
"""

from __future__ import annotations

from pathlib import Path

from ostinato.events.errors import InputError

PRETRAINED = Path(__file__).resolve().parent / "pretrained"
DEFAULT_FOR_FORMAT = {"abc": "folk-abc", "mid": "chorale-midi", "musicxml": "chorale-midi", "mxl": "chorale-midi"}


def shipped_models() -> dict[str, Path]:
    """``{name: folder}`` of every shipped model (a folder holding ``model.safetensors``)."""
    if not PRETRAINED.is_dir():
        return {}
    return {p.name: p for p in sorted(PRETRAINED.iterdir()) if (p / "model.safetensors").is_file()}


def resolve_model(name_or_dir: str) -> Path:
    """The folder of a shipped model's name or of a model folder path.

    Raises:
        InputError: neither a shipped model nor a folder.
    """
    shipped = shipped_models()
    if name_or_dir in shipped:
        return shipped[name_or_dir]
    path = Path(name_or_dir).expanduser()
    if path.is_dir():
        return path
    known = ", ".join(shipped) or "none in this install"
    raise InputError(name_or_dir, f"no such model (shipped models: {known}; or give a folder written by "
                                  f"`ostinato train symbolic`)")


def card_summary(folder: Path) -> str:
    """The model card's title and first paragraph, for ``compose --list``."""
    card = folder / "model_card.md"
    if not card.is_file():
        return "(no model card)"
    lines = card.read_text().splitlines()
    body = []
    for line in lines[1:]:
        if line.startswith("#"):
            if body:
                break
            continue
        if line.strip() or body:
            body.append(line.strip())
    return " ".join(" ".join(body).split())
