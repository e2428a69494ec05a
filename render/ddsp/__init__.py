"""ostinato's own DDSP renderer: per-note voices (harmonic + filtered noise), summed, then a learned reverb.

``core`` holds the torch signal functions and ``model`` the network that training differentiates
(``training``); ``inference`` runs the same model in NumPy for rendering (no torch import);
``features`` is the per-note conditioning, ``performance`` the file's controllers, ``engine`` the
chunked Renderer, ``calibration`` its level against the reference.
"""
