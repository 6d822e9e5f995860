"""jetson/: shellcheck, setup.sh's plan from fixture release files, stage_rootfs.sh into a temporary tree (twice:
the second run must change nothing), the systemd units through systemd-analyze, the default gateway.toml through
the gateway's own config loader, and the container recipe's references.

What needs a Jetson (apt, the venv with JetPack's tensorrt, CuPy on the GPU, systemd actually starting the units,
docker build/run) is not run here; docs/jetson.md says how a board owner checks it.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from biomoe_edge.config import load_toml
from biomoe_edge.runtime.gateway_config import load_config

REPO = pathlib.Path(__file__).resolve().parents[2]
JETSON = REPO / "jetson"
SHELL_SCRIPTS = sorted(JETSON.rglob("*.sh"))

# First lines of /etc/nv_tegra_release. R36.4.4 (AGX Orin) and R38.4.0 (AGX Thor) as quoted in
# github.com/lesomnus/tegra-exporter stats/parse_test.go; R35.4.1 is JetPack 5.1.2's.
RELEASE_R36 = "# R36 (release), REVISION: 4.4, GCID: 41062509, BOARD: generic, EABI: aarch64, DATE: Mon Jun 16 16:07:13 UTC 2025\n# KERNEL_VARIANT: oot\n"
RELEASE_R38 = "# R38 (release), REVISION: 4.0, GCID: 43443517, BOARD: generic, EABI: aarch64, DATE: Wed Dec 31 00:15:19 UTC 2025\n"
RELEASE_R35 = "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: Tue Aug  1 19:57:35 UTC 2023\n"
MODEL_ORIN = "NVIDIA Jetson AGX Orin Developer Kit\0"
MODEL_THOR = "NVIDIA Jetson AGX Thor Developer Kit\0"


def _run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, timeout=120, **kwargs)


# -- shellcheck -----------------------------------------------------------------------------------------------


def test_shellcheck_every_script():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (Debian: apt-get install shellcheck)")
    assert {p.name for p in SHELL_SCRIPTS} >= {"setup.sh", "stage_rootfs.sh", "common.sh", "container-entrypoint.sh"}
    # One run for all (the sourced lib/common.sh is followed from each script: -x with source-path=SCRIPTDIR).
    result = _run(["shellcheck", "-x", *map(str, SHELL_SCRIPTS)], cwd=JETSON)
    assert result.returncode == 0, result.stdout + result.stderr


def test_scripts_are_executable():
    for name in ("setup.sh", "stage_rootfs.sh", "container-entrypoint.sh"):
        assert os.access(JETSON / name, os.X_OK), name


# -- setup.sh --print-plan ------------------------------------------------------------------------------------


def _plan(tmp_path, release: str | None, model: str):
    release_file = tmp_path / "nv_tegra_release"
    if release is not None:
        release_file.write_text(release)
    model_file = tmp_path / "model"
    model_file.write_text(model)
    env = dict(os.environ, BIOMOE_NV_TEGRA_RELEASE=str(release_file), BIOMOE_DT_MODEL=str(model_file))
    return _run(["bash", str(JETSON / "setup.sh"), "--print-plan"], env=env)


def _plan_fields(stdout: str) -> dict:
    return {key.strip(): value.strip() for key, value in (line.split(":", 1) for line in stdout.splitlines() if ":" in line)}


@pytest.mark.parametrize(
    "release, model, jetpack, cupy, python",
    [
        (RELEASE_R36, MODEL_ORIN, "R36.4.4 (JetPack 6", "cupy-cuda12x", "3.10"),
        (RELEASE_R38, MODEL_THOR, "R38.4.0 (JetPack 7", "cupy-cuda13x", "3.12"),
    ],
    ids=["orin-jetpack6", "thor-jetpack7"],
)
def test_plan_from_release_and_model(tmp_path, release, model, jetpack, cupy, python):
    result = _plan(tmp_path, release, model)
    assert result.returncode == 0, result.stderr
    plan = _plan_fields(result.stdout)
    assert plan["L4T release"].startswith(jetpack)
    assert plan["module"] == model.rstrip("\0")
    assert plan["CuPy wheel"] == cupy
    assert plan["python"].startswith(python)
    assert {"python3-venv", "bluez", "python3-libnvinfer"} <= set(plan["apt packages"].split())
    assert plan["virtual environment"] == "/opt/biomoe-edge/venv (--system-site-packages)"


def test_setup_refuses_jetpack5(tmp_path):
    result = _plan(tmp_path, RELEASE_R35, "NVIDIA Jetson AGX Xavier Developer Kit\0")
    assert result.returncode != 0
    assert "L4T R35.4.1 is not supported" in result.stderr
    assert "JetPack 6" in result.stderr and "JetPack 7" in result.stderr
    assert "CuPy" not in result.stdout  # no plan printed


def test_setup_refuses_a_machine_that_is_not_a_jetson(tmp_path):
    result = _plan(tmp_path, None, MODEL_ORIN)
    assert result.returncode != 0 and "not a Jetson" in result.stderr
    result = _plan(tmp_path, "Ubuntu 22.04\n", MODEL_ORIN)
    assert result.returncode != 0 and "cannot read the L4T release" in result.stderr


# -- stage_rootfs.sh ------------------------------------------------------------------------------------------


def _snapshot(root: pathlib.Path) -> dict:
    """path -> (mode, sha256 or link target) for every file and link under root."""
    snap = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            snap[rel] = ("link", os.readlink(path))
        elif path.is_file():
            snap[rel] = (oct(path.stat().st_mode), hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            snap[rel] = (oct(path.stat().st_mode), None)
    return snap


def _stage(rootfs, *args, checkout=REPO, python=sys.executable):
    env = dict(os.environ, PYTHON=str(python))
    return _run(["bash", str(checkout / "jetson/stage_rootfs.sh"), *args, str(rootfs)], env=env)


#: setuptools of the stock Pythons users stage from: Ubuntu 22.04's (JetPack 6 hosts), Ubuntu 24.04's (it imports on
#: Python 3.12, 59 does not). Both are older than 77, the first to read pyproject.toml's SPDX `license = "MIT"`.
STOCK_SETUPTOOLS = "68.1.2" if sys.version_info >= (3, 12) else "59.6.0"


@pytest.fixture(scope="module")
def stock_python(tmp_path_factory):
    """A host Python as a workstation has it: a plain venv (pip from ensurepip) with an old setuptools."""
    venv = tmp_path_factory.mktemp("stock-python")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
    python = venv / "bin/python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"setuptools=={STOCK_SETUPTOOLS}"],
                   check=True, capture_output=True, timeout=300)
    version = _run([str(python), "-c", "import importlib.metadata as m; print(m.version('setuptools'))"]).stdout
    assert int(version.split(".")[0]) < 77, version
    return python


def _frozen_checkout(destination: pathlib.Path) -> pathlib.Path:
    """A copy of what the SDK wheel is built from (not a git checkout: the script's other code path): pyproject.toml,
    README.md, jetson/ and every folder pyproject.toml maps into the biomoe_edge package."""
    package_dirs = set(load_toml(REPO / "pyproject.toml")["tool"]["setuptools"]["package-dir"].values())
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, destination / name)
    for name in sorted(package_dirs | {"jetson"}):
        shutil.copytree(REPO / name, destination / name, ignore=junk, symlinks=True)
    return destination


@pytest.fixture(scope="module")
def staged(tmp_path_factory, stock_python):
    """A minimal Linux_for_Tegra/rootfs (after apply_binaries.sh: nv_tegra_release, passwd, group), staged twice
    by a stock host Python (setuptools older than 77) from a frozen copy of the checkout; gateway.toml is edited
    between the runs like a user would."""
    checkout = _frozen_checkout(tmp_path_factory.mktemp("checkout"))
    rootfs = tmp_path_factory.mktemp("Linux_for_Tegra") / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "usr/bin").mkdir(parents=True)
    (rootfs / "etc/nv_tegra_release").write_text(RELEASE_R36)
    (rootfs / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (rootfs / "etc/group").write_text("root:x:0:\nvideo:x:44:\nbluetooth:x:112:\n")
    first = _stage(rootfs, "--no-deps", checkout=checkout, python=stock_python)
    assert first.returncode == 0, first.stdout + first.stderr
    config = rootfs / "etc/biomoe-edge/gateway.toml"
    config.write_text(config.read_text() + "\n# edited by the user\n")
    before = _snapshot(rootfs)
    second = _stage(rootfs, "--no-deps", checkout=checkout, python=stock_python)
    assert second.returncode == 0, second.stdout + second.stderr
    return rootfs, first, second, before, _snapshot(rootfs)


def test_stage_installs_the_sdk_importable_from_its_lib(staged):
    rootfs, *_ = staged
    lib = rootfs / "opt/biomoe-edge/lib"
    code = "import biomoe_edge.runtime.power; print(biomoe_edge.runtime.power.__file__)"
    # The host's system Python, not this test's venv (which has the SDK installed editable).
    python = shutil.which("python3", path="/usr/bin") or sys.executable
    result = _run([python, "-c", code], env={"PYTHONPATH": str(lib), "PATH": "/usr/bin:/bin"}, cwd=lib)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(lib / "biomoe_edge/runtime/power.py")
    # pyproject's package-dir mapping: export/, runtime/, firmware_bridge/ land inside biomoe_edge/.
    for module in ("export/tensorrt_builder.py", "runtime/engines/compatibility.py", "firmware_bridge/__init__.py", "cli.py"):
        assert (lib / "biomoe_edge" / module).is_file(), module
    # Host-specific leftovers of pip --target are gone: console scripts (host Python's path), direct_url.json.
    assert not (lib / "bin").exists()
    assert not list(lib.glob("*.dist-info/direct_url.json"))


def test_stage_launchers_use_the_rootfs_python_with_the_sdk_first(staged):
    rootfs, *_ = staged
    launcher = rootfs / "opt/biomoe-edge/bin/python"
    text = launcher.read_text()
    assert "exec /usr/bin/python3" in text
    if pathlib.Path("/usr/bin/python3").exists():
        result = _run([str(launcher), "-c", "import sys; print(sys.path[1])"], env={"PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "/opt/biomoe-edge/lib"
    assert "/opt/biomoe-edge/bin/python -m biomoe_edge" in (rootfs / "opt/biomoe-edge/bin/biomoe-edge").read_text()


def test_stage_installs_services_enablement_config_and_user(staged):
    rootfs, *_ = staged
    for unit in ("biomoe-edge.service", "biomoe-edge-engine.service"):
        assert (rootfs / "etc/systemd/system" / unit).read_bytes() == (JETSON / "systemd" / unit).read_bytes()
    wants = rootfs / "etc/systemd/system/multi-user.target.wants/biomoe-edge.service"
    assert os.readlink(wants) == "/etc/systemd/system/biomoe-edge.service"
    assert (rootfs / "etc/sysusers.d/biomoe-edge.conf").read_bytes() == (JETSON / "sysusers.d/biomoe-edge.conf").read_bytes()
    assert (rootfs / "etc/biomoe-edge/engine.env").read_bytes() == (JETSON / "engine.env").read_bytes()
    assert (rootfs / "opt/biomoe-edge/libexec/engine_check.py").read_bytes() == (JETSON / "engine_check.py").read_bytes()
    assert (rootfs / "var/lib/biomoe-edge/models").is_dir() and (rootfs / "var/lib/biomoe-edge/engines").is_dir()
    if shutil.which("systemd-sysusers") is None:
        pytest.skip("systemd-sysusers is not installed: the user is created at first boot instead")
    users = {line.split(":")[0]: line.split(":") for line in (rootfs / "etc/passwd").read_text().splitlines()}
    assert users["biomoe-edge"][5] == "/var/lib/biomoe-edge" and users["biomoe-edge"][6] == "/usr/sbin/nologin"
    groups = {line.split(":")[0]: line.split(":")[3].split(",") for line in (rootfs / "etc/group").read_text().splitlines()}
    for group in ("bluetooth", "video", "render"):
        assert "biomoe-edge" in groups[group], group
    assert groups["bluetooth"] and (rootfs / "etc/group").read_text().count("bluetooth:x:112:") == 1  # kept its GID


def test_second_stage_changes_nothing_and_keeps_user_edits(staged):
    rootfs, first, second, before, after = staged
    assert "installed  " in first.stdout
    changed = [line for line in second.stdout.splitlines() if re.match(r"(installed|linked|created) ", line)]
    assert changed == [], second.stdout
    assert before == after
    assert "# edited by the user" in (rootfs / "etc/biomoe-edge/gateway.toml").read_text()
    assert "kept       " in second.stdout


def test_stage_says_what_the_build_misses(tmp_path, stock_python):
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc/nv_tegra_release").write_text(RELEASE_R36)
    # Offline, from a wheelhouse without setuptools: the isolated build cannot get its build requirement.
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    result = _stage(rootfs, "--no-deps", "--wheelhouse", str(wheelhouse), python=stock_python)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: building the SDK wheel needs setuptools>=77") and str(wheelhouse) in last, last
    # A host Python without pip.
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, capture_output=True)
    result = _stage(rootfs, "--no-deps", python=bare / "bin/python")
    assert result.returncode != 0 and f"the host Python ({bare / 'bin/python'}) has no pip" in result.stderr
    assert not (rootfs / "opt").exists()


def test_build_system_asks_for_the_setuptools_that_reads_the_license_field():
    project = load_toml(REPO / "pyproject.toml")
    assert isinstance(project["project"]["license"], str)  # an SPDX expression (PEP 639): setuptools >= 77
    assert project["build-system"]["requires"] == ["setuptools>=77"]


def test_stage_refuses_an_unsupported_or_missing_rootfs(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc/nv_tegra_release").write_text(RELEASE_R35)
    result = _stage(rootfs, "--no-deps")
    assert result.returncode != 0 and "L4T R35 is not supported" in result.stderr
    assert not (rootfs / "opt").exists()
    result = _stage(tmp_path / "nothing-here", "--no-deps")
    assert result.returncode != 0 and "does not look like a root filesystem" in result.stderr


# -- aarch64 wheels (CI: .ci/dependencies.py aarch64) ----------------------------------------------------------


def _wheel(folder: pathlib.Path, name: str, tag: str, requires=()) -> None:
    """A minimal wheel: enough metadata for pip to resolve and download it."""
    import zipfile

    info = f"{name}-1.0.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: 1.0\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(folder / f"{name}-1.0-{tag}.whl", "w") as wheel:
        wheel.writestr(f"{info}/METADATA", metadata)
        wheel.writestr(f"{info}/WHEEL", f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n")
        wheel.writestr(f"{info}/RECORD", "")


def test_aarch64_check_names_the_dependency_without_an_aarch64_wheel(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    # A project whose gateway dependency is pure Python but needs a package built for x86-64 only.
    _wheel(wheels, "gateway_dep", "py3-none-any", requires=["native-dep>=1"])
    _wheel(wheels, "native_dep", "py3-none-manylinux2014_x86_64")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "biomoe-edge"\ndependencies = ["gateway-dep>=1.0"]\n')
    command = [sys.executable, str(REPO / ".ci/dependencies.py"), "aarch64", "--python", sys.executable,
               "--glibc", "2.35", "--find-links", str(wheels), "--pyproject", str(pyproject)]
    result = _run(command)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: no aarch64 wheel of native-dep>=1 for CPython"), result.stderr
    # A manylinux_2_28 aarch64 wheel (as onnxruntime ships) installs on JetPack 6's glibc 2.35: the check passes.
    _wheel(wheels, "native_dep", "py3-none-manylinux_2_28_aarch64")
    result = _run(command)
    assert result.returncode == 0, result.stderr
    assert "gateway_dep-1.0-py3-none-any.whl" in result.stdout and "native_dep-1.0-py3-none-manylinux_2_28_aarch64.whl" in result.stdout


# -- systemd units --------------------------------------------------------------------------------------------


@pytest.fixture()
def units_in_temp_root(tmp_path):
    """The units with /opt/biomoe-edge rewritten to a temporary prefix holding executables, because
    `systemd-analyze verify` checks that every ExecStart= binary exists and is executable."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    prefix = tmp_path / "opt/biomoe-edge"
    (prefix / "bin").mkdir(parents=True)
    for name in ("biomoe-edge", "python"):
        (prefix / "bin" / name).write_text("#!/bin/sh\n")
        (prefix / "bin" / name).chmod(0o755)
    units = []
    for unit in ("biomoe-edge.service", "biomoe-edge-engine.service"):
        text = (JETSON / "systemd" / unit).read_text().replace("/opt/biomoe-edge", str(prefix))
        (tmp_path / unit).write_text(text)
        units.append(tmp_path / unit)
    return tmp_path, units


def _verify(paths, cwd):
    result = _run(["systemd-analyze", "verify", *map(str, paths)], cwd=cwd)
    # verify exits 0 on unknown keys and unparsable values but prints them: any line naming our files fails.
    ours = [line for line in result.stderr.splitlines() if any(p.name in line for p in paths)]
    return result.returncode, ours, result.stderr


def test_units_pass_systemd_analyze_verify(units_in_temp_root):
    root, units = units_in_temp_root
    returncode, ours, stderr = _verify(units, root)
    assert returncode == 0 and ours == [], stderr


def test_verify_catches_a_broken_unit(units_in_temp_root):
    # The check above can fail: a misspelt key and a missing executable are both reported.
    root, units = units_in_temp_root
    broken = root / "broken.service"
    text = units[0].read_text().replace("ProtectSystem=strict", "ProtectSytem=strict")
    broken.write_text(text.replace("bin/biomoe-edge run", "bin/not-there run"))
    returncode, ours, _ = _verify([broken], root)
    assert returncode != 0 or ours
    assert any("ProtectSytem" in line for line in ours)


@pytest.mark.parametrize("unit, threshold", [("biomoe-edge.service", 20), ("biomoe-edge-engine.service", 18)])
def test_units_hardening_exposure(units_in_temp_root, unit, threshold):
    # systemd's own exposure score (0 best .. 100 worst, shown /10): 2.0 and 1.8 with systemd 252 (the gateway was
    # 3.1 while it held CAP_NET_ADMIN CAP_NET_RAW: never worse than that again).
    root, _ = units_in_temp_root
    result = _run(["systemd-analyze", "security", "--offline=yes", f"--threshold={threshold}", unit], cwd=root)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr


def test_gateway_unit_keeps_the_gpu_reachable_and_holds_no_capability():
    text = (JETSON / "systemd/biomoe-edge.service").read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", text, re.MULTILINE))
    # PrivateDevices/DevicePolicy/DeviceAllow would hide /dev/nvhost-*, /dev/nvmap (Orin) and /dev/nvidia* (Thor);
    # so would ProtectClock before systemd 253 (it implied DeviceAllow=char-rtc: systemd/systemd#18142).
    for unit in ("biomoe-edge.service", "biomoe-edge-engine.service"):
        keys = set(re.findall(r"^(\w+)=", (JETSON / "systemd" / unit).read_text(), re.MULTILINE))
        assert not keys & {"PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock"}, unit
    # bleak reaches BlueZ over D-Bus (AF_UNIX): no capability, no Bluetooth socket of its own.
    assert settings["CapabilityBoundingSet"] == "" and settings["AmbientCapabilities"] == ""
    assert settings["User"] == "biomoe-edge" and settings["Type"] == "notify" and settings["WatchdogSec"] == "30s"
    assert settings["Restart"] == "on-failure" and settings["ProtectSystem"] == "strict"
    assert set(settings["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}


# -- configuration --------------------------------------------------------------------------------------------


def test_default_gateway_toml_passes_the_gateway_loader_and_agrees_with_engine_env():
    config = load_config(JETSON / "gateway.toml")
    assert config.devices == ()  # empty allow-list: connects to nothing until the user lists wearables
    assert config.engine.kind == "tensorrt"
    env = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', (JETSON / "engine.env").read_text(), re.MULTILINE))
    engine, onnx = pathlib.Path(env["BIOMOE_ENGINE"]), pathlib.Path(env["BIOMOE_ONNX"])
    assert config.engine.path == engine
    assert engine.is_relative_to("/var/lib/biomoe-edge") and onnx.is_relative_to("/var/lib/biomoe-edge")
    # Engine and ONNX manifests are both <stem>.json: they must live in different folders.
    assert engine.with_suffix(".json") != onnx.with_suffix(".json")
    assert all(str(s.options.get("directory", "/var/lib/biomoe-edge")).startswith("/var/lib/biomoe-edge") for s in config.sinks)


# -- container recipe -----------------------------------------------------------------------------------------


def test_dockerfile_base_image_and_references():
    text = (JETSON / "Dockerfile").read_text()
    assert re.search(r"^FROM nvcr\.io/nvidia/l4t-(jetpack:r36\.4\.0|tensorrt:r10\.3\.0-runtime)$", text, re.MULTILINE)
    ignore = (JETSON / "Dockerfile.dockerignore").read_text().splitlines()
    for line in re.findall(r"^COPY (.+)$", text, re.MULTILINE):
        *sources, _dest = line.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
            top = source.split("/")[0]
            assert any(rule in (f"!{source}", f"!{top}/**", f"!{source}/**") for rule in ignore), f"{source} is excluded by Dockerfile.dockerignore"
    entrypoint = re.search(r'^ENTRYPOINT \["([^"]+)"\]', text, re.MULTILINE).group(1)
    assert re.search(rf"^COPY jetson/container-entrypoint\.sh {re.escape(entrypoint)}$", text, re.MULTILINE)
    for flag in ("--runtime nvidia", "-v /var/run/dbus:/var/run/dbus"):
        assert flag in text and flag in (REPO / "docs/jetson.md").read_text()


def test_service_and_container_command_lines_match_the_real_cli():
    from biomoe_edge.cli import build_parser

    exec_start = re.search(r"^ExecStart=(\S+) (.+)$", (JETSON / "systemd/biomoe-edge.service").read_text(), re.MULTILINE)
    assert exec_start.group(1) == "/opt/biomoe-edge/bin/biomoe-edge"
    args = build_parser(only="run").parse_args(exec_start.group(2).split())
    assert (args.command, args.config, args.quiet) == ("run", "/etc/biomoe-edge/gateway.toml", True)
    entry = re.search(r'^exec biomoe-edge (.+)$', (JETSON / "container-entrypoint.sh").read_text(), re.MULTILINE)
    args = build_parser(only="run").parse_args(entry.group(1).replace('"$config"', "/etc/biomoe-edge/gateway.toml").split())
    assert args.quiet and args.config == "/etc/biomoe-edge/gateway.toml"


# -- least privilege: configuration files and the container ---------------------------------------------------


def _install_payload(root: pathlib.Path):
    script = f'set -e; . "{JETSON}/lib/common.sh"; install_payload "{root}"'
    return _run(["bash", "-c", script])


def test_installed_configuration_is_not_world_readable_and_an_old_copy_is_tightened(tmp_path):
    root = tmp_path / "root"
    result = _install_payload(root)
    assert result.returncode == 0, result.stderr
    config = root / "etc/biomoe-edge/gateway.toml"
    assert config.stat().st_mode & 0o777 == 0o640
    assert (root / "etc/tmpfiles.d/biomoe-edge.conf").read_bytes() == (JETSON / "tmpfiles.d/biomoe-edge.conf").read_bytes()
    # A copy an older version installed world-readable, with a password added by its owner: access taken, text kept.
    config.write_text(config.read_text() + '\n# password = "kept as it is"\n')
    config.chmod(0o644)
    result = _install_payload(root)
    assert result.returncode == 0, result.stderr
    assert "tightened  " in result.stdout
    assert config.stat().st_mode & 0o777 == 0o640 and "kept as it is" in config.read_text()
    assert "tightened" not in _install_payload(root).stdout  # idempotent


def test_tmpfiles_entry_gives_the_configuration_to_the_gateways_group_only(tmp_path):
    if shutil.which("systemd-tmpfiles") is None:
        pytest.skip("systemd-tmpfiles is not installed (Debian: apt-get install systemd)")
    root = tmp_path / "root"
    assert _install_payload(root).returncode == 0
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\nbiomoe-edge:x:987:\n")
    result = _run(["systemd-tmpfiles", f"--root={root}", "--create", str(root / "etc/tmpfiles.d/biomoe-edge.conf")])
    assert result.returncode == 0, result.stderr
    for path, mode in (("etc/biomoe-edge", 0o750), ("etc/biomoe-edge/gateway.toml", 0o640),
                       ("etc/biomoe-edge/secrets", 0o750)):
        stat = (root / path).stat()
        assert (stat.st_mode & 0o777, stat.st_uid, stat.st_gid) == (mode, 0, 987), path


def test_container_runs_as_an_unprivileged_user_with_the_hosts_groups():
    text = (JETSON / "Dockerfile").read_text()
    user = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert text.index("USER ") < text.index("ENTRYPOINT")
    docs = (REPO / "docs/jetson.md").read_text()
    for flag in ("--cap-drop ALL", "--security-opt no-new-privileges", "--group-add"):
        assert flag in text and flag in docs, flag
    for group in ("bluetooth", "video", "render", "biomoe-edge"):
        assert re.search(rf"for g in [^;]*\b{group}\b", text), group
