"""Koherent's benchmarks against plain Django and the other Django history libraries.

``make bench`` (``python -m benchmarks``) runs every scenario and writes ``results.md``,
``results.json`` and the README's Performance table. See ``benchmarks/README.md``.
"""
