"""Importable sample models for ckpt: every catalog kind, nested, shared,
cyclic, already-fixed, and realistic services.

Try them from the repository root, e.g. `ckpt scan sample_models.service:build`.
"""
