"""What the TensorRT builder and loader share: the guarded import and the bridge to Python logging."""

from __future__ import annotations

import collections
import logging

from biomoe_edge.runtime.engines.exc import TensorRTUnavailableError

_logger_class = None


def import_tensorrt():
    """Import the ``tensorrt`` module or raise TensorRTUnavailableError saying how to get it on a Jetson."""
    try:
        import tensorrt
    except ImportError as exc:
        raise TensorRTUnavailableError(str(exc)) from None
    return tensorrt


def tensorrt_major(trt) -> int:
    return int(str(trt.__version__).split(".")[0])


def make_logger(trt, logger: logging.Logger, *, keep_errors: int = 20):
    """A ``trt.ILogger`` that routes TensorRT's messages to ``logger`` and keeps the last errors for exceptions."""
    global _logger_class
    if _logger_class is None:
        severity = trt.ILogger.Severity
        levels = {
            severity.INTERNAL_ERROR: logging.CRITICAL,
            severity.ERROR: logging.ERROR,
            severity.WARNING: logging.WARNING,
            severity.INFO: logging.INFO,
            severity.VERBOSE: logging.DEBUG,
        }

        class PythonLoggingTrtLogger(trt.ILogger):
            def __init__(self, target: logging.Logger, keep: int):
                trt.ILogger.__init__(self)  # pybind11 trampolines need the base constructor called explicitly
                self.target = target
                self.errors = collections.deque(maxlen=keep)

            def log(self, sev, msg):
                level = levels.get(sev, logging.INFO)
                if level >= logging.ERROR:
                    self.errors.append(msg)
                if self.target.isEnabledFor(level):
                    self.target.log(level, "TensorRT: %s", msg)

        _logger_class = PythonLoggingTrtLogger
    return _logger_class(logger, keep_errors)
