"""The DDSP model's configuration: validated, JSON round-trip, saved beside the weights."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from ..instruments import N_INSTRUMENTS


@dataclass
class DDSPConfig:
    """Sizes and signal settings of a DDSP renderer.

    Attributes:
        sample_rate_hz: the model's native rate; output is resampled from it.
        hop_samples: samples per control frame (frame rate = sample_rate_hz / hop_samples).
        n_harmonics: partials per voice (those above Nyquist are silenced).
        n_noise_bands: noise filter bands, evenly spaced 0 Hz .. Nyquist.
        hidden_size, n_layers, embedding_size: the per-frame network.
        time_scales_s: decay constants of the time-since-onset/release features.
        release_s: how long a voice keeps sounding after its note ends.
        reverb_s: length of the trainable reverb impulse response.
        reverb_send: the learned response splits at ``body_s``: its first part (the instruments' body, as a
            SoundFont sample carries it) shapes every voice, and its late part (the room) hears each
            instrument's learned share (0..1) of its voices, its reverb send, so a drum can be dry while a
            string rings. False (models before it): the whole response shapes the whole mix alike.
        body_s: with ``reverb_send``, where the body ends and the room begins (seconds).
        noise_seed: seed of the noise generator (same seed, same audio).
        trained_instruments: instrument indices (program, or 128 + drum key) seen in training;
            others are played by a trained instrument of the same GM family
            (:func:`render.instruments.instrument_map`).
        output_gain_db: gain of the rendered mix, in dB, calibrated after training so that the
            integrated loudness (ITU-R BS.1770) matches the reference engine's
            (``benchmarks/render_fidelity.py --calibrate``); not trained.
        velocity_exponent: each voice is scaled by ``(velocity / 127) ** velocity_exponent``, the part
            of the reference's velocity curve the network did not learn (2.0 is the SoundFont
            default, 40 log10(v / 127) dB, for a model deaf to velocity); calibrated, not trained.
        instrument_velocity_exponent: the same exponent for one instrument, by instrument index (others:
            ``velocity_exponent``); calibrated, not trained.
        instrument_gain_db: calibrated gain of an instrument's part, in dB, by instrument index
            (as ``trained_instruments``; others 0 dB); not trained (:func:`render.ddsp.calibration.calibrate`).
    """

    sample_rate_hz: int = 22050
    hop_samples: int = 245
    n_harmonics: int = 64
    n_noise_bands: int = 48
    hidden_size: int = 128
    n_layers: int = 2
    embedding_size: int = 16
    time_scales_s: tuple[float, ...] = (0.005, 0.02, 0.08, 0.3, 1.2, 4.0)
    release_s: float = 0.6
    reverb_s: float = 0.5
    reverb_send: bool = False
    body_s: float = 0.05
    noise_seed: int = 0
    trained_instruments: list[int] = field(default_factory=list)
    output_gain_db: float = 0.0
    velocity_exponent: float = 0.0
    instrument_velocity_exponent: dict[int, float] = field(default_factory=dict)
    instrument_gain_db: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.time_scales_s = tuple(float(t) for t in self.time_scales_s)
        self.reverb_send = bool(self.reverb_send)
        self.output_gain_db = float(self.output_gain_db)
        self.velocity_exponent = float(self.velocity_exponent)
        self.instrument_gain_db = {int(i): float(g) for i, g in sorted(dict(self.instrument_gain_db).items(),
                                                                        key=lambda kv: int(kv[0]))}
        self.instrument_velocity_exponent = {int(i): float(e) for i, e in sorted(
            dict(self.instrument_velocity_exponent).items(), key=lambda kv: int(kv[0]))}
        self.trained_instruments = sorted({int(i) for i in self.trained_instruments})
        checks = {
            "sample_rate_hz": 4000 <= self.sample_rate_hz <= 96000,
            "hop_samples": 16 <= self.hop_samples <= 4096,
            "n_harmonics": 1 <= self.n_harmonics <= 512,
            "n_noise_bands": 2 <= self.n_noise_bands <= 1024,
            "hidden_size": 1 <= self.hidden_size <= 4096,
            "n_layers": 1 <= self.n_layers <= 16,
            "embedding_size": 1 <= self.embedding_size <= 512,
            "time_scales_s": len(self.time_scales_s) > 0 and all(t > 0 for t in self.time_scales_s),
            "release_s": 0 <= self.release_s <= 10,
            "reverb_s": 0 < self.reverb_s <= 10,
            "body_s": 0 <= self.body_s <= self.reverb_s,
            "noise_seed": 0 <= self.noise_seed < 2**63,
            "trained_instruments": all(0 <= i < N_INSTRUMENTS for i in self.trained_instruments),
            "output_gain_db": -40.0 <= self.output_gain_db <= 40.0,
            "velocity_exponent": 0.0 <= self.velocity_exponent <= 4.0,
            "instrument_velocity_exponent": all(0 <= i < N_INSTRUMENTS and 0.0 <= e <= 4.0
                                                for i, e in self.instrument_velocity_exponent.items()),
            "instrument_gain_db": all(0 <= i < N_INSTRUMENTS and -40.0 <= g <= 40.0
                                      for i, g in self.instrument_gain_db.items()),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"DDSPConfig.{name} is out of range: got {getattr(self, name)!r}")

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate_hz / self.hop_samples

    @property
    def instrument_gain(self):
        """Linear gain per instrument: float64 ``[N_INSTRUMENTS]`` (ones without calibration)."""
        import numpy as np

        gain_db = np.zeros(N_INSTRUMENTS)
        for instrument, db in self.instrument_gain_db.items():
            gain_db[instrument] = db
        return 10.0 ** (gain_db / 20.0)

    @property
    def velocity_exponents(self):
        """The velocity exponent of each instrument: float64 ``[N_INSTRUMENTS]`` (``velocity_exponent`` where
        ``instrument_velocity_exponent`` has none)."""
        import numpy as np

        exponents = np.full(N_INSTRUMENTS, self.velocity_exponent)
        for instrument, exponent in self.instrument_velocity_exponent.items():
            exponents[instrument] = exponent
        return exponents

    @property
    def release_frames(self) -> int:
        return round(self.release_s * self.frame_rate_hz)

    @property
    def body_samples(self) -> int:
        return round(self.body_s * self.sample_rate_hz)

    @property
    def reverb_samples(self) -> int:
        return round(self.reverb_s * self.sample_rate_hz)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> DDSPConfig:
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"DDSPConfig: unknown field(s) {sorted(unknown)}")
        return cls(**data)
