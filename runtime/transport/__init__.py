"""BLE connections to wearables through bleak (BlueZ on a Jetson, or the Bumble backend for emulation)."""
