"""Data sets and batch conversion: sources, per-file converters, local and Ray runners, manifests.

Built in the corpora issue, on top of ``events``.
"""
