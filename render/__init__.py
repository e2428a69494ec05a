"""Audio stage: one Renderer interface with ddsp, wavenet and soundfont (FluidSynth) engines.

Sees only note tables and piano rolls (``events``), never tokens. Built in the audio stage issue.
"""
