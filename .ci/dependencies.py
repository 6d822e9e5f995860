"""The SDK's declared dependencies, for CI: their lower bounds as pins, and a check that each has an aarch64 wheel.

    python .ci/dependencies.py lower-bounds --python-version 3.10 EXTRA...
        `name==floor` for every requirement of the SDK and of the named extras (followed through
        `biomoe-edge[...]`), with environment markers evaluated for that Python. Fails naming any requirement
        without a `>=` lower bound: a range is only what CI tests it with. Used as a pip constraints file.

    python .ci/dependencies.py aarch64 --python PYTHON --glibc 2.35 [--also REQUIREMENT]... EXTRA...
        `pip download --only-binary=:all:` of those requirements for aarch64 (manylinux2014 and every
        manylinux_2_x up to the Jetson's glibc: JetPack 6 has 2.35, JetPack 7 2.39) with PYTHON's own pip, so
        that `python_version` markers of the dependencies are evaluated for that Python. Exit 1 naming the package
        that has no aarch64 wheel.

Needs `packaging` (and tomli on Python 3.10), which every test environment has.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import subprocess
import sys
import tempfile

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # the tests run this on Python 3.10 too, where the SDK depends on tomli
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROJECT = canonicalize_name("biomoe-edge")


def requirements(extras, python_version: str, pyproject=ROOT / "pyproject.toml") -> list[Requirement]:
    """The SDK's own requirements plus those of ``extras`` (recursively), whose markers hold on that Python."""
    project = tomllib.loads(pathlib.Path(pyproject).read_text())["project"]
    optional = project.get("optional-dependencies", {})
    environment = {"python_version": python_version, "python_full_version": f"{python_version}.0"}
    found: dict[str, Requirement] = {}
    seen_extras: set[str] = set()

    def add(texts, extra=""):
        for text in texts:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({**environment, "extra": extra}):
                continue
            if canonicalize_name(requirement.name) == PROJECT:
                for name in sorted(requirement.extras):
                    expand(name)
                continue
            found.setdefault(canonicalize_name(requirement.name), requirement)

    def expand(name):
        if name in seen_extras:
            return
        if name not in optional:
            raise SystemExit(f"error: pyproject.toml has no extra {name!r}")
        seen_extras.add(name)
        add(optional[name], name)

    add(project.get("dependencies", []))
    for name in extras:
        expand(name)
    return list(found.values())


def lower_bound(requirement: Requirement) -> str:
    floors = [spec.version for spec in requirement.specifier if spec.operator == ">="]
    if len(floors) != 1:
        raise SystemExit(f"error: {requirement} has no single >= lower bound: declare the oldest release CI tests")
    return floors[0]


def aarch64_platforms(glibc: str) -> list[str]:
    major, minor = (int(part) for part in glibc.split("."))
    if major != 2:
        raise SystemExit(f"error: glibc {glibc}?")
    return ["manylinux2014_aarch64"] + [f"manylinux_2_{m}_aarch64" for m in range(17, minor + 1)]


def _python_version(python: str) -> str:
    return subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def check_aarch64(python: str, glibc: str, wanted: list[str], pip_options=()) -> int:
    version = _python_version(python)
    abi = "cp" + version.replace(".", "")
    platforms = [option for p in aarch64_platforms(glibc) for option in ("--platform", p)]
    with tempfile.TemporaryDirectory() as dest:
        command = [python, "-m", "pip", "download", "--quiet", "--dest", dest, "--only-binary=:all:", *platforms,
                   "--python-version", version, "--implementation", "cp", "--abi", abi, *pip_options, *wanted]
        result = subprocess.run(command, capture_output=True, text=True)
        wheels = sorted(path.name for path in pathlib.Path(dest).iterdir())
    if result.returncode == 0:
        print(f"aarch64: {len(wheels)} wheels for CPython {version} on glibc {glibc}: {', '.join(wheels)}")
        return 0
    sys.stderr.write(result.stderr)
    missing = re.findall(r"No matching distribution found for (\S+)", result.stderr)
    what = missing[0] if missing else "a requirement (pip's output above)"
    print(f"error: no aarch64 wheel of {what} for CPython {version} (manylinux2014 to manylinux_{glibc.replace('.', '_')})"
          ": every dependency of the gateway path must install on a Jetson", file=sys.stderr)
    return 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    bounds = commands.add_parser("lower-bounds")
    bounds.add_argument("--python-version", required=True)
    bounds.add_argument("extras", nargs="*")
    arm = commands.add_parser("aarch64")
    arm.add_argument("--python", required=True, help="the interpreter whose pip downloads (its version is the target)")
    arm.add_argument("--glibc", required=True, help="the Jetson's glibc: 2.35 (JetPack 6) or 2.39 (JetPack 7)")
    arm.add_argument("--also", action="append", default=[], metavar="REQUIREMENT",
                     help="a further requirement (the JetPack's CuPy); repeatable")
    arm.add_argument("--find-links", metavar="DIR", help="take wheels from DIR only (pip --no-index --find-links)")
    arm.add_argument("extras", nargs="*")
    for command in (bounds, arm):
        command.add_argument("--pyproject", default=ROOT / "pyproject.toml", type=pathlib.Path)
    args = parser.parse_args(argv)
    if args.command == "lower-bounds":
        for requirement in requirements(args.extras, args.python_version, args.pyproject):
            print(f"{requirement.name}=={lower_bound(requirement)}")
        return 0
    version = _python_version(args.python)
    # Markers were evaluated for the target already; pip would evaluate them for the Python it runs on.
    wanted = [f"{r.name}{'[' + ','.join(sorted(r.extras)) + ']' if r.extras else ''}{r.specifier}"
              for r in requirements(args.extras, version, args.pyproject)] + args.also
    pip_options = ["--no-index", "--find-links", args.find_links] if args.find_links else []
    return check_aarch64(args.python, args.glibc, wanted, pip_options)


if __name__ == "__main__":
    sys.exit(main())
