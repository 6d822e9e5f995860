"""Wearable wire formats: bytes from BLE notifications to samples, with loss accounting. Needs only NumPy."""
