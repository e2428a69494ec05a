"""ostinato: a symbolic-first music system.

One import name, four stages in layers (each package's ``__init__`` says what it may import):

- ``ostinato.events``   the contract: note tables, controllers, readers and writers, sources,
                        GM tables, key/meter theory, metrics, piano-roll plots. Imports no
                        other package of ours.
- ``ostinato.symbolic`` the token stage (tokenizers, GPT model, training, constrained sampling);
- ``ostinato.render``   the audio stage (DDSP, WaveNet, SoundFont engines, renderer training).
                        symbolic and render import ``events`` only, never each other.
- ``ostinato.corpora``  batch conversion over both stages.
- ``ostinato.cli``      the ``ostinato`` command: the only module that wires stages together.
"""

__version__ = "0.1.0"
