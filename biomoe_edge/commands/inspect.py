"""``biomoe-edge inspect FILE``: the manifest of an exported file; for ONNX also an operator summary."""

from __future__ import annotations

import argparse
import json
import pathlib

HELP = "print the manifest of an exported ONNX or engine file (and the operator summary of an ONNX graph)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=pathlib.Path, metavar="FILE", help="model.onnx, model.engine or its .json")


def run(args) -> int:
    from biomoe_edge.manifest import manifest_path, read_manifest

    path = args.file
    if path.suffix == ".json":  # the manifest itself: inspect the artefact it describes
        path = path.with_name(json.loads(path.read_text()).get("file", path.stem))
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    is_onnx = path.suffix == ".onnx"
    if manifest_path(path).is_file() or not is_onnx:
        manifest = read_manifest(path)  # an engine without its manifest is an error: nothing can vouch for it
        print(f"manifest {manifest_path(path)}:")
        print(json.dumps(manifest, indent=2))
    else:
        print(f"no manifest beside {path} (expected {manifest_path(path)})")
    if is_onnx:
        from biomoe_edge.export.graph_info import format_summary, operator_summary

        print(format_summary(operator_summary(path)))
    return 0
