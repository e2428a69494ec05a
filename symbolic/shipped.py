"""The models that ship with ostinato (``symbolic/pretrained/<name>/``) and how a name is resolved.

``--model NAME|DIR``: a name of a shipped model, or the path of any model folder that
``ostinato train symbolic`` wrote.
"""

from __future__ import annotations

from pathlib import Path

from ostinato.events.errors import InputError

PRETRAINED = Path(__file__).resolve().parent / "pretrained"
DEFAULTS_FILE = "compose.json"   # a model folder's own defaults for the controls a plain `compose` leaves open
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


def _recorded(folder, name: str):
    """``name`` of the model folder's metrics.json (how its training run read the data); None when it does
    not say (a folder not written by ``train symbolic``)."""
    import json

    try:
        return json.loads((Path(folder) / "metrics.json").read_text()).get(name)
    except (OSError, ValueError, AttributeError):
        return None


def trained_instruments(folder) -> str:
    """How the model's training run assigned instruments (``keep`` or ``ensemble``), from its
    metrics.json; ``keep`` when it does not say."""
    recorded = _recorded(folder, "instruments")
    return recorded if recorded in ("keep", "ensemble") else "keep"


def trained_expand_repeats(folder) -> bool:
    """Whether the model's training run played the scores' repeats out (its metrics.json; False when it does
    not say)."""
    return _recorded(folder, "expand_repeats") is True


def known_controls(folder: Path) -> dict[str, list[str]]:
    """What a model was trained on: ``{"trained_instruments": [...], "trained_styles": [...]}`` from its
    metrics.json (GM programs as strings and ``"drums"``; collection names); ``{}`` when not recorded."""
    import json

    try:
        metrics = json.loads((Path(folder) / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(metrics, dict):
        return {}
    return {name: [str(v) for v in metrics[name]] for name in ("trained_instruments", "trained_styles")
            if isinstance(metrics.get(name), list)}


def check_known(folder: Path, *, instruments=(), style: str | None = None) -> None:
    """Refuse a control the model never saw (an instrument or a style), naming what it knows.

    Raises:
        UsageError: ``instruments`` (GM programs, ``"drums"``) or ``style`` outside the model's training data.
    """
    from ostinato.events.errors import UsageError

    known = known_controls(folder)
    trained = known.get("trained_instruments")
    if trained is not None:
        unknown = [str(x) for x in instruments if str(x) not in trained]
        if unknown:
            raise UsageError("--instruments", f"{folder.name} was never trained on {', '.join(unknown)} "
                                              f"(it knows GM programs {', '.join(trained)})")
    styles = known.get("trained_styles")
    if styles is not None and style is not None and style not in styles:
        raise UsageError("--style", f"{folder.name} was never trained on the style {style!r} "
                                    f"(it knows {', '.join(styles)})")


def compose_defaults(folder: Path) -> dict:
    """The controls a plain ``ostinato compose`` uses with this model where the user sets none: the
    folder's ``compose.json``, e.g. ``{"style": "bach", "instruments": "73,40,60,42"}`` (what the model
    does best; every flag overrides it). Returns ``{"style": str, "instruments": tuple}`` (only the keys
    given; ``{}`` without the file). Nothing in it is executed.

    Raises:
        InputError: the file is not a JSON object of those two keys, or names an unknown instrument.
    """
    import json

    from ostinato.events.instruments import instrument_list

    path = Path(folder) / DEFAULTS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not JSON ({exc})") from None
    if not isinstance(data, dict) or set(data) - {"style", "instruments"}:
        raise InputError(path, 'expected an object with "style" and/or "instruments", e.g. '
                               '{"style": "bach", "instruments": "73,40,60,42"}')
    out: dict = {}
    if "style" in data:
        if not isinstance(data["style"], str) or not data["style"]:
            raise InputError(path, f"style: expected a style name, got {data['style']!r}")
        out["style"] = data["style"]
    if "instruments" in data:
        try:
            if not isinstance(data["instruments"], str):
                raise ValueError(f"expected a list such as \"73,40,60,42\", got {data['instruments']!r}")
            out["instruments"] = instrument_list(data["instruments"])
        except ValueError as exc:
            raise InputError(path, f"instruments: {exc}") from None
    return out
