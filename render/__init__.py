"""Audio stage: one Renderer interface with ddsp, wavenet and soundfont (FluidSynth) engines.

Sees only note tables and piano rolls (``events``), never tokens.

    renderer = render.get_renderer("ddsp")             # or "soundfont", soundfont=PATH; "wavenet", model=DIR
    audio = renderer.render(table, sample_rate_hz=44100)   # float32 [2, n_samples]
    render.write_audio(audio, 44100, "out.flac")

Every engine returns float32 stereo audio ``[N_CHANNELS=2, n_samples]`` that lasts the
piece plus ``tail_s`` (1 s) of release; see :mod:`render.base`.
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
