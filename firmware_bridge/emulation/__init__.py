"""Emulated wearables on Bumble, and a bleak backend on Bumble, so production BleakClient code runs with no hardware."""
