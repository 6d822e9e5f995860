"""Market BLE profiles decoded into the same stream abstraction: Heart Rate, Pulse Oximeter (PLX), Polar PMD."""
