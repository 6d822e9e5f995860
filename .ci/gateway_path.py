"""pytest plugin for CI's gateway-path runs (Python 3.10 and 3.12, no PyTorch): `pytest -p gateway_path`.

The gateway path is every test except those marked ``torch`` (pyproject.toml registers the marker). Exactly those
are left out, and nothing else can drop out quietly:

- the run refuses to start where torch is importable (it would not test the gateway without it);
- tests marked ``torch`` are deselected, and the count is printed;
- an unmarked test (or fixture, or module) that calls ``pytest.importorskip("torch")`` fails instead of skipping,
  naming the test and the marker it lacks. A module may skip itself at import only if it is marked as a whole
  (``pytestmark = pytest.mark.torch`` before the importorskip). An unmarked test that imports torch directly
  fails with ModuleNotFoundError anyway.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest

MARKER = "torch"


def _is_torch(modname: str) -> bool:
    return modname == "torch" or modname.startswith("torch.")


def _module_marked_torch(namespace: dict) -> bool:
    marks = namespace.get("pytestmark", [])
    marks = marks if isinstance(marks, (list, tuple)) else [marks]
    return any(getattr(mark, "name", None) == MARKER for mark in marks)


def pytest_configure(config):
    if importlib.util.find_spec("torch") is not None:
        raise pytest.UsageError(
            f"gateway_path: torch is installed in {sys.prefix}; the gateway-path run needs an environment without it"
        )
    original = pytest.importorskip

    def importorskip(modname, *args, **kwargs):
        __tracebackhide__ = True  # a skip is reported at the caller's line, as pytest's own importorskip is
        if _is_torch(modname):
            caller = sys._getframe(1)
            if caller.f_code.co_name == "<module>" and _module_marked_torch(caller.f_globals):
                _SKIPPED_MODULES.append(caller.f_globals.get("__name__", "?"))
                return original(modname, *args, **kwargs)  # a module marked torch as a whole skips itself
            where = f"{caller.f_code.co_filename}:{caller.f_lineno} ({caller.f_code.co_name})"
            pytest.fail(
                f"{where} needs torch but its test is not marked torch: add @pytest.mark.torch (the gateway-path "
                "runs leave out exactly the tests so marked, and skip nothing else for want of torch)",
                pytrace=False,
            )
        return original(modname, *args, **kwargs)

    config.add_cleanup(lambda: setattr(pytest, "importorskip", original))
    pytest.importorskip = importorskip


def pytest_collection_modifyitems(config, items):
    torch_tests = [item for item in items if item.get_closest_marker(MARKER) is not None]
    if torch_tests:
        config.hook.pytest_deselected(items=torch_tests)
        items[:] = [item for item in items if item.get_closest_marker(MARKER) is None]
    config.stash[_DESELECTED] = len(torch_tests)


def pytest_report_collectionfinish(config):
    modules = f", and {len(_SKIPPED_MODULES)} test modules marked torch as a whole" if _SKIPPED_MODULES else ""
    return f"gateway path: {config.stash.get(_DESELECTED, 0)} tests marked torch left out{modules}"


_DESELECTED = pytest.StashKey[int]()
_SKIPPED_MODULES: list[str] = []
