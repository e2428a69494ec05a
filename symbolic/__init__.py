"""Token stage: tokenizers (ABC, MIDI events), the GPT model, training and constrained sampling.

Sees only tokens and note tables (``events``), never audio. Built in the token stage issue.
"""
