"""The shared event representation: note tables, piano rolls, file I/O, and what every stage shares.

This is the contract between ostinato's stages (see DESIGN.md, "The data path"): readers
turn MIDI, ABC, MusicXML and kern into a :class:`NoteTable`; writers turn one back into
MIDI, ABC or MusicXML; :func:`to_pianoroll` gives renderers their frame-level view; and
:func:`to_score`/:func:`from_score` hand the notes to symusic and miditok with ticks intact.

The bottom layer: this package imports no other ostinato package, and every other one may
import it. Besides the contract it holds what the stages share, so that neither has to
import the other:

- :mod:`events.sources`: pieces from files, folders, globs and music21 collections, keyed,
  with the held-out split of DESIGN.md; :mod:`events.abc2midi`: the fast ABC reader.
- :mod:`events.instruments`: General MIDI programs by name, ensembles for parts that name none.
- :mod:`events.theory`: keys and meters (key names, signatures, tonics).
- :mod:`events.plot`: piano-roll figures; :mod:`events.console`: tables and JSON records.
"""

from .abc_write import table_to_abc, write_abc
from .errors import InputError
from .io import AUDIO_FORMATS, AUDIO_SUFFIXES, READ_SUFFIXES, Piece, format_for, iter_pieces, pieces, read, write
from .limits import ReadLimits
from .midi import read_midi, write_midi
from .pianoroll import PianoRoll, to_pianoroll
from .score import from_score, to_score
from .table import Controls, KeySignature, NoteTable, Tempo, TempoMap, TimeSignature, Track

__all__ = [
    "AUDIO_FORMATS", "AUDIO_SUFFIXES", "READ_SUFFIXES", "Controls", "InputError", "KeySignature", "NoteTable",
    "PianoRoll",
    "Piece", "ReadLimits", "Tempo", "TempoMap", "TimeSignature", "Track", "format_for", "from_score", "iter_pieces",
    "pieces", "read", "read_midi", "table_to_abc", "to_pianoroll", "to_score", "write", "write_abc", "write_midi",
]
