"""The work of ``ostinato train renderer``, for every trainable engine: a :class:`TrainRendererRequest` in,
a model folder out.

    request = TrainRendererRequest(engine="wavenet", data=PairSource(synthesize_from=("music21:bach",)),
                                   out="model/", train=TrainConfig(steps=2000), config="tiny")
    state = train_renderer(request)

The pairs come from :func:`render.paired.load_pairs`; the engine's ``training.train`` does the
rest (the loop and checkpoints of :mod:`render.training_common`). The engine-specific parts are
its model config (ddsp: ``harmonics``/``hidden_size``/``layers``; wavenet: a ``config`` preset or
JSON file and the output ``distribution``) and the unit of its held-out loss.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ostinato.events.errors import UsageError

if TYPE_CHECKING:
    from .paired import PairSource
    from .training_common import TrainConfig

TRAINABLE_ENGINES = ("ddsp", "wavenet")
DEFAULT_WAVENET_CONFIG = "piano"
FRAME_RATE_HZ = 90  # a new ddsp model's control frames per second


@dataclass(frozen=True)
class TrainRendererRequest:
    """What ``ostinato train renderer`` is asked to do (validated: a bad value is a :class:`UsageError`).

    Attributes:
        engine: ``ddsp`` or ``wavenet``.
        data: where the (notes, audio) pairs come from.
        out: the model folder (best model, ``checkpoint/``, ``train_log.jsonl``).
        train: the optimisation settings.
        resume: continue from ``out/checkpoint`` (its model config wins).
        init_from: ddsp: start a new run from this model folder's (or shipped name's) weights and config:
            the sizes not given are its own; ``harmonics`` may differ (its first partials are kept, new ones
            start silent) and ``frame_rate_hz`` too (the network's features are in seconds, so its weights
            hold at another hop); the other sizes must be its own.
        harmonics, hidden_size, layers: the ddsp model's sizes (default 48, 128, 2).
        sample_rate_hz: the ddsp model's native rate (default 44,100 Hz);
        frame_rate_hz: its control frames per second (default 90: hop = rate // 90);
        noise_bands: its noise bands from 0 Hz to Nyquist (default: one per 230 Hz, 96 at 44.1 kHz).
        config: the wavenet model's config, a preset name (``tiny``, ``piano``) or a JSON file
            (default ``piano``); distribution: its output, ``mulaw`` or ``mol`` (default: the config's).
        progress: show progress bars.
    """

    engine: str
    data: PairSource
    out: str
    train: TrainConfig
    resume: bool = False
    init_from: str | None = None
    harmonics: int | None = None
    hidden_size: int | None = None
    layers: int | None = None
    sample_rate_hz: int | None = None
    frame_rate_hz: float | None = None
    noise_bands: int | None = None
    config: str | None = None
    distribution: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", os.fspath(self.out))

        def usage(problem: str) -> UsageError:
            return UsageError("train renderer", problem)

        if self.engine not in TRAINABLE_ENGINES:
            raise usage(f"cannot train engine {self.engine!r} (choose {', '.join(TRAINABLE_ENGINES)})")
        if self.engine != "wavenet" and (self.config or self.distribution):
            raise usage("--config and --distribution are for --engine wavenet")
        if self.init_from is not None and self.engine != "ddsp":
            raise usage("--init-from is for --engine ddsp")
        if self.init_from is not None and self.resume:
            raise usage("--init-from starts a new run and --resume continues one: give one of them")
        if self.engine == "wavenet":
            from .wavenet.config import OUTPUTS

            if self.distribution is not None and self.distribution not in OUTPUTS:
                raise usage(f"--distribution must be one of {', '.join(OUTPUTS)}, got {self.distribution!r}")
        else:
            try:
                self.model_config()
            except ValueError as exc:
                raise usage(str(exc)) from None

    def model_config(self):
        """The engine's model config for a new run: ddsp's :class:`~render.ddsp.config.DDSPConfig` of
        ``harmonics``, ``hidden_size`` and ``layers``; wavenet's :class:`~render.wavenet.config.WaveNetConfig`
        of ``config`` and ``distribution``.

        Raises:
            events.InputError: the wavenet config file is missing, not JSON, or has a bad field.
        """
        if self.engine == "ddsp":
            from .ddsp.config import DDSPConfig

            if self.init_from is not None:
                return self.init_config()
            rate = 44100 if self.sample_rate_hz is None else self.sample_rate_hz
            bands = max(2, round(rate / 2 / 230)) if self.noise_bands is None else self.noise_bands
            return DDSPConfig(n_harmonics=48 if self.harmonics is None else self.harmonics,
                              hidden_size=128 if self.hidden_size is None else self.hidden_size,
                              n_layers=2 if self.layers is None else self.layers, sample_rate_hz=rate,
                              hop_samples=self.hop_samples(rate), n_noise_bands=bands, reverb_send=True)
        import dataclasses

        from .wavenet.config import model_config

        config = model_config(self.config or DEFAULT_WAVENET_CONFIG)
        return dataclasses.replace(config, output=self.distribution) if self.distribution else config

    def hop_samples(self, sample_rate_hz: int) -> int:
        """Samples per control frame at ``frame_rate_hz`` (default 90 per second), rounded down."""
        frame_rate = self.frame_rate_hz if self.frame_rate_hz is not None else FRAME_RATE_HZ
        if not frame_rate > 0:
            raise ValueError(f"the frame rate must be positive, got {frame_rate}")
        return max(1, int(sample_rate_hz // frame_rate))

    def init_config(self):
        """The config of a run started ``init_from`` a ddsp model: its own, with ``harmonics`` and the hop of
        ``frame_rate_hz`` when given (ValueError: another size asked for that its weights cannot give)."""
        import dataclasses

        config = self.init_model().config
        given = {"hidden_size": (self.hidden_size, config.hidden_size), "layers": (self.layers, config.n_layers),
                 "sample_rate": (self.sample_rate_hz, config.sample_rate_hz),
                 "noise_bands": (self.noise_bands, config.n_noise_bands)}
        for name, (asked, own) in given.items():
            if asked is not None and asked != own:
                raise ValueError(f"--init-from {self.init_from} has {name.replace('_', ' ')} {own}: "
                                 f"--{name.replace('_', '-')} {asked} cannot start from its weights")
        hop = config.hop_samples if self.frame_rate_hz is None else self.hop_samples(config.sample_rate_hz)
        harmonics = config.n_harmonics if self.harmonics is None else self.harmonics
        return dataclasses.replace(config, n_harmonics=harmonics, hop_samples=hop)

    def init_model(self):
        """The ddsp model of ``init_from`` (read once; events.InputError when it does not load)."""
        cached = self.__dict__.get("_init_model")
        if cached is None:
            from .ddsp.engine import load_model

            cached = load_model(self.init_from)
            object.__setattr__(self, "_init_model", cached)
        return cached

    def init_state(self, model_config) -> dict | None:
        """The weights a new run of ``model_config`` starts from: ``init_from``'s, fitted to its partials
        (:func:`render.ddsp.model.fit_state`); None without ``init_from``."""
        if self.init_from is None:
            return None
        from .ddsp.model import fit_state

        model = self.init_model()
        return fit_state(model.state_dict(), model.config, model_config)


def engine_training(engine: str) -> tuple[Callable, str]:
    """``(the engine's train function, the unit of its held-out loss)``, imported on use."""
    if engine == "ddsp":
        from .ddsp.training import train

        return train, ""  # multi-resolution STFT distance
    if engine == "wavenet":
        from .wavenet.training import train

        return train, " nats/sample"
    raise ValueError(f"cannot train engine {engine!r} (choose {', '.join(TRAINABLE_ENGINES)})")


def stderr_log(message: str) -> None:
    """``ostinato: <message>`` on stderr (the train command's progress lines)."""
    print(f"ostinato: {message}", file=sys.stderr, flush=True)


def train_renderer(request: TrainRendererRequest, *, log: Callable[[str], None] = stderr_log,
                   on_error: Callable[[str, Exception], None] | None = None) -> dict:
    """Load the pairs, train (or resume) the engine's model into ``request.out``; returns the final state.

    Args:
        log: where progress lines go (the number of pieces, each evaluation, the result).
        on_error: called with (key, exception) for a piece that cannot be read or rendered; it is
            skipped (raised without one).
    Raises:
        events.InputError: a source, the wavenet config file or the checkpoint to resume is unusable.
        ValueError: no training or no held-out piece is left.
    """
    from .model_folder import CONFIG_FILE
    from .paired import load_pairs
    from .training_common import require_checkpoint

    train, unit = engine_training(request.engine)
    model_config = request.model_config()
    if request.resume:  # the checkpoint's config wins (its sample rate decides how the pairs are read)
        checkpoint = require_checkpoint(request.out)
        model_config = type(model_config).from_json((checkpoint / CONFIG_FILE).read_text())
    rate = model_config.sample_rate_hz
    train_pairs, heldout_pairs = load_pairs(request.data, rate, progress=request.progress, on_error=on_error)
    minutes = sum(len(p.audio) for p in train_pairs) / rate / 60
    log(f"{len(train_pairs)} training pieces ({minutes:.1f} min), {len(heldout_pairs)} held out")
    extra = {} if request.init_from is None else {"init_state": request.init_state(model_config)}  # ddsp's only
    state = train(model_config, train_pairs, heldout_pairs, request.out, request.train, resume=request.resume,
                  progress=request.progress, log=log, **extra)
    log(f"done: step {state['step']}, held-out loss {state['first_heldout_loss']:.4f} -> "
        f"best {state['best_heldout_loss']:.4f}{unit}; model in {request.out}")
    return state
