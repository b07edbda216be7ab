"""Rendering a shot: the scheduler, the per-face composite, blends and colour match."""
