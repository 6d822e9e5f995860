"""Samples to windows: per-stream ring buffers, clock mapping, resampling, alignment, quality gating."""
