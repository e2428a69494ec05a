"""Token stage: tokenizers (ABC, MIDI events), the GPT model, training and constrained sampling.

Sees only tokens and note tables, never audio. A side-by-side layer (DESIGN.md, "The layers"):
symbolic imports ``ostinato.events`` only, never ``ostinato.render`` or ``ostinato.corpora``
(import-linter checks it); ``ostinato.cli`` wires it to the render stage (``compose --render``).

- :mod:`symbolic.abc_normalise`, :mod:`symbolic.abc_tokens`: ABC tunes as folk-rnn style tokens.
- :mod:`symbolic.midi_tokens`: miditok REMI/TSD/MIDILike behind MuseNet-style control tokens.
- :mod:`symbolic.tokenizers`: the ``Tokenizer`` protocol every tokenizer implements (controls,
  grammar, primer, encode, decode, units), and build/load any tokenizer by kind or JSON file.
- :mod:`symbolic.model`: ModelConfig, GPT-2/Llama via transformers, model folders.
- :mod:`symbolic.data`: sources -> token arrays, the held-out split, packing.
- :mod:`symbolic.fast_remi`: miditok's REMI ids, vectorised.
- :mod:`symbolic.train`: the training loop (AdamW, cosine, checkpoints, resume, DDP).
- :mod:`symbolic.sample`: the KV-cached sampling loop; :mod:`symbolic.abc_grammar` and
  :mod:`symbolic.midi_grammar` (a base grammar and one small class per scheme): the masks that
  keep every sample valid.
- :mod:`symbolic.compose`, :mod:`symbolic.shipped`: composing with controls and primers; shipped models.
- :mod:`symbolic.infill`: rewriting bars inside a piece (fill-in-the-middle training format, span
  grammars); ``infill(piece, bars=(5, 8), model=...)`` is exported here.
- :mod:`symbolic.evaluate`: held-out likelihood, sample metrics.
- :mod:`symbolic.commands`, :mod:`symbolic.evaluate_commands`: ``train symbolic``, ``compose``,
  ``evaluate nll``, ``evaluate samples`` (options -> a request dataclass -> a library function).
"""

from .abc_normalise import AbcNotAccepted, music21_misreads, normalise_abc
from .abc_tokens import AbcTokenizer
from .infill import infill
from .midi_tokens import Controls, MidiTokenizer
from .model import PRESETS, ModelConfig, build_model, load_model_folder, save_model_folder
from .tokenizers import KINDS, Tokenizer, build_tokenizer, load_tokenizer, save_tokenizer

__all__ = [
    "KINDS", "PRESETS", "AbcNotAccepted", "AbcTokenizer", "Controls", "MidiTokenizer", "ModelConfig", "Tokenizer",
    "build_model", "build_tokenizer", "infill", "load_model_folder", "load_tokenizer", "music21_misreads",
    "normalise_abc", "save_model_folder", "save_tokenizer",
]
