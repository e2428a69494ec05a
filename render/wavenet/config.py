"""The WaveNet model's configuration: validated, JSON round-trip, saved beside the weights."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

from ..instruments import N_INSTRUMENTS

__all__ = ["OUTPUTS", "PRESETS", "WaveNetConfig"]

OUTPUTS = ("mulaw", "mol")


@dataclass
class WaveNetConfig:
    """Sizes and signal settings of a piano-roll-conditioned WaveNet.

    Attributes:
        sample_rate_hz: the model's native rate; output is resampled from it.
        upsample_factors: strides of the learned transposed convolutions that bring the
            conditioning from the frame rate to the sample rate; their product is ``hop_samples``.
        n_layers: dilated causal convolution layers in all.
        dilation_cycle: layer ``i`` has dilation ``2 ** (i % dilation_cycle)`` (stacks of 1, 2, 4, ...).
        kernel_size: taps of each dilated convolution.
        residual_channels, gate_channels, skip_channels: widths (the gate is split into a tanh
            half and a sigmoid half, so ``gate_channels`` is even).
        condition_channels: width of the conditioning network (frame and sample rate).
        embedding_size: width of the instrument embedding.
        output: ``"mulaw"`` (softmax over ``n_classes`` 8-bit mu-law classes) or ``"mol"``
            (discretized mixture of ``n_mixtures`` logistics over ``2 ** mol_bits`` levels).
        log_scale_min: floor of the logistic components' log scale (mol).
        trained_instruments: instrument indices (program, or 128 for a drum kit) seen in training;
            others are played by a trained instrument of the same GM family
            (:func:`render.instruments.instrument_map`).
    """

    sample_rate_hz: int = 16000
    upsample_factors: tuple[int, ...] = (4, 4, 8)
    n_layers: int = 30
    dilation_cycle: int = 10
    kernel_size: int = 2
    residual_channels: int = 64
    gate_channels: int = 128
    skip_channels: int = 128
    condition_channels: int = 64
    embedding_size: int = 16
    output: str = "mulaw"
    n_classes: int = 256
    n_mixtures: int = 10
    mol_bits: int = 16
    log_scale_min: float = -7.0
    trained_instruments: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.upsample_factors = tuple(self.upsample_factors)
        self.trained_instruments = sorted({int(i) for i in self.trained_instruments})
        ints = ("sample_rate_hz", "n_layers", "dilation_cycle", "kernel_size", "residual_channels", "gate_channels",
                "skip_channels", "condition_channels", "embedding_size", "n_classes", "n_mixtures", "mol_bits")
        for name in ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"WaveNetConfig.{name} must be an integer: got {value!r}")
        if not all(isinstance(f, int) and not isinstance(f, bool) for f in self.upsample_factors):
            raise ValueError(f"WaveNetConfig.upsample_factors must be integers: got {self.upsample_factors!r}")
        checks = {
            "sample_rate_hz": 4000 <= self.sample_rate_hz <= 96000,
            "upsample_factors": 1 <= len(self.upsample_factors) <= 6
            and all(2 <= f <= 32 for f in self.upsample_factors) and 16 <= math.prod(self.upsample_factors) <= 4096,
            "n_layers": 1 <= self.n_layers <= 128,
            "dilation_cycle": 1 <= self.dilation_cycle <= 16,
            "kernel_size": 2 <= self.kernel_size <= 8,
            "residual_channels": 1 <= self.residual_channels <= 2048,
            "gate_channels": 2 <= self.gate_channels <= 4096 and self.gate_channels % 2 == 0,
            "skip_channels": 1 <= self.skip_channels <= 4096,
            "condition_channels": 1 <= self.condition_channels <= 2048,
            "embedding_size": 1 <= self.embedding_size <= 512,
            "output": self.output in OUTPUTS,
            "n_classes": 2 <= self.n_classes <= 65536,
            "n_mixtures": 1 <= self.n_mixtures <= 64,
            "mol_bits": 8 <= self.mol_bits <= 24,
            "log_scale_min": -20.0 <= self.log_scale_min <= 0.0,
            "trained_instruments": all(0 <= i < N_INSTRUMENTS for i in self.trained_instruments),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"WaveNetConfig.{name} is out of range: got {getattr(self, name)!r}")

    @property
    def hop_samples(self) -> int:
        """Samples per conditioning frame (the product of ``upsample_factors``)."""
        return math.prod(self.upsample_factors)

    @property
    def frame_rate_hz(self) -> float:
        """Piano-roll frames per second."""
        return self.sample_rate_hz / self.hop_samples

    @property
    def dilations(self) -> list[int]:
        return [2 ** (i % self.dilation_cycle) for i in range(self.n_layers)]

    @property
    def receptive_field(self) -> int:
        """Samples an output sees: itself's predecessors back to ``receptive_field`` samples."""
        return 1 + (self.kernel_size - 1) * sum(self.dilations)

    @property
    def n_outputs(self) -> int:
        """Channels of the output head: class logits, or (weights, means, log scales) of the mixture."""
        return self.n_classes if self.output == "mulaw" else 3 * self.n_mixtures

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> WaveNetConfig:
        if not isinstance(data, dict):
            raise ValueError(f"WaveNetConfig: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"WaveNetConfig: unknown field(s) {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> WaveNetConfig:
        return cls.from_dict(json.loads(text))


PRESETS = {
    # a few seconds of training on a CPU: for tests and trying the commands
    "tiny": WaveNetConfig(sample_rate_hz=8000, upsample_factors=(8, 8), n_layers=8, dilation_cycle=8,
                          residual_channels=16, gate_channels=32, skip_channels=32, condition_channels=16,
                          embedding_size=8),
    # the recipe's model (examples/configs/wavenet-piano.json): 16 kHz, 3 stacks of 10 layers, 1.4 M parameters
    "piano": WaveNetConfig(),
}


def model_config(name_or_path: str) -> WaveNetConfig:
    """A preset by name (``tiny``, ``piano``) or a JSON file of :class:`WaveNetConfig` fields.

    Raises:
        events.InputError: the file is missing, not JSON, or has a bad field (named in the message).
    """
    from pathlib import Path

    from ostinato.events import InputError

    if name_or_path in PRESETS:
        return dataclasses.replace(PRESETS[name_or_path])
    path = Path(name_or_path)
    if not path.is_file():
        raise InputError(name_or_path, f"not a wavenet config preset ({', '.join(PRESETS)}) nor a JSON file")
    try:
        return WaveNetConfig.from_json(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not JSON ({exc})") from None
    except (ValueError, TypeError) as exc:
        raise InputError(path, str(exc)) from None
