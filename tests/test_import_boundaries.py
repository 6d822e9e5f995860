"""What a Jetson gateway imports: no torch outside the PyTorch engine, not even to build an engine."""

import subprocess
import sys
import textwrap

BLOCK_TORCH = textwrap.dedent(
    """
    import importlib.abc, sys
    class BlockTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is not installed on this gateway")
    sys.meta_path.insert(0, BlockTorch())
    """
)


def run_without_torch(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code)], capture_output=True, text=True)


def test_build_engine_and_its_command_import_without_torch():
    result = run_without_torch(
        """
        from biomoe_edge.export import build_engine
        import biomoe_edge.export.tensorrt_builder
        from biomoe_edge.cli import build_parser
        build_parser(only="build-engine").parse_args(["build-engine", "model.onnx"])
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_export_names_need_torch_only_when_used():
    result = run_without_torch(
        """
        import biomoe_edge.export as export
        try:
            export.load_tiny_biomoe
        except ImportError as exc:
            print("needs torch:", exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "needs torch" in result.stdout


# -- layers only look down: the whole import graph --------------------------------------------------------------

import ast  # noqa: E402
import pathlib  # noqa: E402

from biomoe_edge.config import load_toml  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: Bottom first (docs/architecture.md, "Layers"). A module may import its own layer and those below. A module
#: belongs to the layer of its longest matching prefix; what no longer prefix claims under biomoe_edge is shared.
LAYERS = (
    ("shared", ("biomoe_edge",)),
    ("firmware_bridge: errors", ("biomoe_edge.firmware_bridge.exc",)),
    ("firmware_bridge: packets", ("biomoe_edge.firmware_bridge.packet",)),
    ("firmware_bridge: characteristic values", ("biomoe_edge.firmware_bridge.description", "biomoe_edge.firmware_bridge.gatt")),
    ("firmware_bridge: clock", ("biomoe_edge.firmware_bridge.clock",)),
    ("firmware_bridge: reassembly", ("biomoe_edge.firmware_bridge.reassembly",)),
    # the package re-exports everything up to its profiles
    ("firmware_bridge: profiles", ("biomoe_edge.firmware_bridge.profiles", "biomoe_edge.firmware_bridge")),
    ("firmware_bridge: emulation", ("biomoe_edge.firmware_bridge.emulation",)),
    ("runtime: records", ("biomoe_edge.runtime.records", "biomoe_edge.runtime.power")),
    ("runtime: transport", ("biomoe_edge.runtime.transport",)),
    ("runtime: ingest", ("biomoe_edge.runtime.ingest",)),
    ("runtime: transforms", ("biomoe_edge.runtime.transforms",)),
    ("runtime: engines", ("biomoe_edge.runtime.engines",)),
    ("runtime: scheduler", ("biomoe_edge.runtime.scheduler",)),
    ("runtime: sinks", ("biomoe_edge.runtime.sinks",)),
    ("runtime: heads", ("biomoe_edge.runtime.heads",)),
    ("runtime: pipeline", ("biomoe_edge.runtime.pipeline",)),
    ("runtime: configuration", ("biomoe_edge.runtime.gateway_config",)),
    ("runtime: gateway", ("biomoe_edge.runtime", "biomoe_edge.runtime.gateway", "biomoe_edge.runtime.console",
                          "biomoe_edge.runtime.systemd_notify")),
    ("runtime: web", ("biomoe_edge.runtime.web",)),
    ("build time", ("biomoe_edge.export", "biomoe_edge.training")),
    ("scripts", ("<benchmarks>", "<jetson>", "<scripts>")),
    ("command line", ("biomoe_edge.commands", "biomoe_edge.cli", "biomoe_edge.__main__")),
)
#: Upward imports that stay, each with its reason.
ALLOWED_UPWARD = {
    ("biomoe_edge.runtime.engines.pytorch_engine", "biomoe_edge.export"):
        "the PyTorch engine builds Tiny-BioMoE from the model definition, lazily, only when that engine is chosen",
}
SCRIPT_FOLDERS = ("benchmarks", "jetson", "scripts")


def package_dirs() -> dict[str, str]:
    """Folder -> import name, from pyproject's ``package-dir`` (one namespace over the top-level folders)."""
    mapping = load_toml(ROOT / "pyproject.toml")["tool"]["setuptools"]["package-dir"]
    return {folder: name for name, folder in mapping.items()}


def python_files() -> dict[str, pathlib.Path]:
    """Module name -> file, for the packages and the scripts (``<folder>.name``)."""
    modules = {}
    for folder, package in package_dirs().items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    for folder in SCRIPT_FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            modules[f"<{folder}>.{path.stem}"] = path
    return modules


def layer_of(module: str) -> int | None:
    best, rank = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    return rank


def _type_checking_only(tree) -> set[int]:
    """Import nodes under ``if TYPE_CHECKING:`` (annotations only: nothing is imported at run time)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    return skipped


def imports_of(module: str, path: pathlib.Path, known: set[str]) -> list[tuple[int, str]]:
    """(line, module imported) for every SDK import in ``path``, function-level (lazy) imports included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = _type_checking_only(tree)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:  # ``from package import submodule`` imports the submodule
                candidate = f"{source}.{alias.name}"
                found.append((node.lineno, candidate if candidate in known else source))
    return [(line, name) for line, name in found if name == "biomoe_edge" or name.startswith("biomoe_edge.")]


def _shown(path: pathlib.Path) -> str:
    return str(path.relative_to(ROOT)) if ROOT in path.parents else str(path)


def upward_imports(modules: dict[str, pathlib.Path]) -> list[str]:
    known = set(modules)
    problems = []
    for module, path in sorted(modules.items()):
        own = layer_of(module)
        if own is None:
            problems.append(f"{_shown(path)}: module {module} is in no layer (add it to LAYERS)")
            continue
        for line, imported in imports_of(module, path, known):
            target = layer_of(imported)
            allowed = any(module.startswith(a) and (imported == b or imported.startswith(b + "."))
                          for a, b in ALLOWED_UPWARD)
            if target is not None and target > own and not allowed:
                problems.append(f"{_shown(path)}:{line} imports {imported}: layer '{LAYERS[own][0]}' must "
                                f"not import '{LAYERS[target][0]}', which is above it")
    return problems


def test_every_import_looks_down_the_layers():
    problems = upward_imports(python_files())
    assert problems == [], "imports against the layer order:\n" + "\n".join(problems)


def test_the_layer_check_names_an_upward_import(tmp_path):
    """The check above can fail: an ingest module importing a transform, lazily inside a function, is named with
    its file and line; an import under TYPE_CHECKING (annotations only) is not."""
    module = tmp_path / "resample.py"
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import biomoe_edge.runtime.gateway\n"
                      "def rate():\n    from biomoe_edge.runtime.transforms.defaults import modality_defaults\n")
    assert upward_imports({"biomoe_edge.runtime.ingest.resample": module}) == [
        f"{module}:5 imports biomoe_edge.runtime.transforms.defaults: layer 'runtime: ingest' must not import "
        "'runtime: transforms', which is above it"]


def command_cross_imports(modules: dict[str, pathlib.Path]) -> list[str]:
    """Imports of one command's module by another: what two commands share belongs below the command line."""
    from biomoe_edge.cli import COMMANDS

    commands = {f"biomoe_edge.commands.{name}" for name in COMMANDS.values()}
    known = set(modules)
    problems = []
    for module, path in sorted(modules.items()):
        if module not in commands:
            continue
        for line, imported in imports_of(module, path, known):
            target = next((c for c in commands if imported == c or imported.startswith(c + ".")), None)
            if target is not None and target != module:
                problems.append(f"{_shown(path)}:{line}: command {module} imports command {target}")
    return problems


def test_no_command_imports_another_command():
    problems = command_cross_imports(python_files())
    assert problems == [], "commands importing commands:\n" + "\n".join(problems)


def test_the_command_check_names_a_cross_import(tmp_path):
    module = tmp_path / "embed.py"
    module.write_text("def run(args):\n    from biomoe_edge.commands.demo import open_demo_engine\n")
    assert command_cross_imports({"biomoe_edge.commands.embed": module}) == [
        f"{module}:2: command biomoe_edge.commands.embed imports command biomoe_edge.commands.demo"]
