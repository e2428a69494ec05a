"""Audio stage: one Renderer interface with ddsp, wavenet and soundfont (FluidSynth) engines, and their training.

Sees only note tables and piano rolls (``events``), never tokens.

    renderer = render.get_renderer("ddsp")             # or "soundfont", soundfont=PATH; "wavenet", model=DIR
    audio = renderer.render(table, sample_rate_hz=44100)   # float32 [2, n_samples]
    render.write_audio(audio, 44100, "out.flac")

Every engine returns float32 stereo audio ``[N_CHANNELS=2, n_samples]`` that lasts the
piece plus ``tail_s`` (1 s) of release; see :mod:`render.base`.

Layer (DESIGN.md): render imports ``ostinato.events`` only, never ``symbolic`` or ``corpora``; the
engines ``ddsp`` and ``wavenet`` never import each other (what both need lives at this level).

Modules:

- ``base``: the Renderer interface, output lengths, the engine registry (:func:`get_renderer`)
- ``soundfont``, ``fluidsynth_lib``: the FluidSynth engine (the reference, and the maker of training audio)
- ``ddsp/``, ``wavenet/``: the neural engines (config, model, features or conditioning, engine, training)
- ``instruments``: the instrument index both neural engines embed, and the fallback for untrained ones
- ``model_folder``: a neural model's folder (safetensors + JSON), shipped ones under ``pretrained/``
- ``audio_io``: writing WAV/FLAC/OGG, whole or streamed; ``spectral``: multi-resolution STFT loss and distance
- ``paired``: (notes, audio) training pairs, synthesized or recorded; ``datasets``: MAESTRO/URMP/Slakh2100 layouts
- ``sources``: note sources for synthesized pairs; ``training_common``: the training loop and checkpoints
- ``render_command``, ``train_command``, ``evaluate``: the work of ``render``, ``train renderer`` and
  ``evaluate render`` (a request dataclass in); ``commands``: their options (argparse -> requests)
- ``plot``: log-mel spectrograms with notes drawn over them
"""

from .audio_io import write_audio, write_audio_stream
from .base import ENGINES, N_CHANNELS, Renderer, get_renderer, n_output_samples, register_engine
from .spectral import multi_resolution_stft_loss, stft_distance


def _soundfont(**options) -> Renderer:
    from .soundfont import SoundFontRenderer

    return SoundFontRenderer(**options)


def _ddsp(**options) -> Renderer:
    from .ddsp.engine import DDSPRenderer

    return DDSPRenderer(**options)


def _wavenet(**options) -> Renderer:
    from .wavenet.engine import WaveNetRenderer

    return WaveNetRenderer(**options)


register_engine("soundfont", _soundfont)
register_engine("ddsp", _ddsp)
register_engine("wavenet", _wavenet)

__all__ = [
    "ENGINES", "N_CHANNELS", "Renderer", "get_renderer", "multi_resolution_stft_loss", "n_output_samples",
    "register_engine", "stft_distance", "write_audio", "write_audio_stream",
]
