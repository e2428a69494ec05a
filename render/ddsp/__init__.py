"""ostinato's own PyTorch DDSP renderer: per-note voices (harmonic + filtered noise), summed, then reverb.

``core`` holds the pure signal functions, ``features`` the per-note conditioning, ``model``
the network and its config, ``engine`` the chunked Renderer, ``training`` the training loop.
"""
