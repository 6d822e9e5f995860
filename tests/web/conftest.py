"""The web tests drive a gateway fed by hand with the gateway tests' packets and small engine."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "gateway"))
