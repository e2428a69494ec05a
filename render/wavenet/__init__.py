"""ostinato's piano-roll-conditioned WaveNet renderer (the heavier engine, for GPU machines).

``config`` holds the sizes, ``conditioning`` the piano-roll planes by instrument, ``model`` the
network, ``output`` the mu-law and mixture-of-logistics distributions, ``generate`` the naive
and incremental samplers and the segmented rendering, ``engine`` the Renderer, ``training`` the
training loop (shared with ddsp through ``render.training_common``). See MODEL_CARD.md for the
recipe of a piano model.
"""
