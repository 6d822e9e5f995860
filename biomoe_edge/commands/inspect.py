"""``biomoe-edge inspect FILE``: what a model file is and whether it can be trusted.

- an exported ONNX graph or TensorRT engine: its manifest, whether the file's sha256 matches it, where its
  weights came from (``random_weights``), and for ONNX an operator summary;
- a Tiny-BioMoE checkpoint (``.pth`` / ``.pt``): every entry (key, shape, dtype) and what loading does with it
  (loaded, cast to float32, ignored as not part of Tiny-BioMoE, refused), and the verdict.

Exit status 1 when the file would be refused (a hash mismatch, a checkpoint that does not load).
"""

from __future__ import annotations

import argparse
import json
import pathlib

HELP = ("what a model file holds: an ONNX graph's or engine's manifest, sha256 check and provenance, or a "
        "checkpoint's keys, shapes and dtypes and whether it loads")

CHECKPOINT_SUFFIXES = (".pth", ".pt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=pathlib.Path, metavar="FILE",
                        help="model.onnx, model.engine or its .json, or a Tiny-BioMoE checkpoint (.pth)")
    parser.add_argument("--strict", action="store_true",
                        help="checkpoints: judge as `--strict` loading does (entries outside Tiny-BioMoE refuse it)")


def run(args) -> int:
    path = args.file
    if path.suffix == ".json":  # the manifest itself: inspect the artefact it describes
        path = path.with_name(json.loads(path.read_text()).get("file", path.stem))
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    if path.suffix in CHECKPOINT_SUFFIXES:
        return inspect_checkpoint_file(path, strict=args.strict)
    return inspect_model_file(path)


def inspect_model_file(path: pathlib.Path) -> int:
    from biomoe_edge.manifest import manifest_path, read_manifest, sha256_file
    from biomoe_edge.runtime.engines.provenance import integrity_problem, weights_provenance

    is_onnx = path.suffix == ".onnx"
    status = 0
    if manifest_path(path).is_file() or not is_onnx:
        manifest = read_manifest(path)  # an engine without its manifest is an error: nothing can vouch for it
        print(f"manifest {manifest_path(path)}:")
        print(json.dumps(manifest, indent=2))
        digest = sha256_file(path)
        problem = integrity_problem(path, manifest, digest=digest)
        if problem is None:
            print(f"sha256 matches the manifest: {digest}")
        else:
            print(f"sha256 MISMATCH: {problem}")
            status = 1
        provenance = weights_provenance(manifest)
    else:
        print(f"no manifest beside {path} (expected {manifest_path(path)}): nothing vouches for its weights")
        print(f"sha256: {sha256_file(path)}")
        provenance = weights_provenance({})
    print(_weights_line(provenance))
    if is_onnx:
        from biomoe_edge.export.graph_info import format_summary, operator_summary

        print(format_summary(operator_summary(path)))
    return status


def _weights_line(provenance: dict) -> str:
    if provenance["random_weights"]:
        return (f"random_weights: true (seed {provenance['seed']}): embeddings of this model are meaningless; "
                "records from it say so")
    return f"random_weights: false (checkpoint sha256 {provenance['checkpoint_sha256']})"


def inspect_checkpoint_file(path: pathlib.Path, *, strict: bool = False) -> int:
    from biomoe_edge.export.checkpoint import expected_entries, inspect_checkpoint

    report = inspect_checkpoint(path)
    print(f"checkpoint {path}: {report.size_bytes / 1e6:.1f} MB, sha256 {report.sha256}")
    print(f"layout: {report.layout}" + (f"; keys prefixed {report.prefix!r} (removed)" if report.prefix else ""))
    for name, kind in report.top_level_ignored.items():
        print(f"  top-level entry {name!r} ({kind}): ignored, not part of Tiny-BioMoE")
    width = max((len(e.key) for e in report.entries), default=10)
    print(f"{'key':<{width}}  {'shape':<18} {'dtype':<9} loading")
    for entry in report.entries:
        shape = "x".join(str(s) for s in entry.shape) if entry.shape is not None else "-"
        what = {"ok": "loaded", "cast": f"cast {entry.detail}", "ignored": f"IGNORED: {entry.detail}",
                "mis-shaped": f"REFUSED: mis-shaped, {entry.detail}", "wrong type": f"REFUSED: {entry.detail}"}
        print(f"{entry.key:<{width}}  {shape or 'scalar':<18} {entry.dtype:<9} {what[entry.status]}")
    expected = expected_entries()
    for key in report.missing:
        shape = "x".join(str(s) for s in expected[key][0]) or "scalar"
        print(f"{key:<{width}}  {shape:<18} {'-':<9} MISSING (Tiny-BioMoE needs it)")
    loaded = report.by_status("ok", "cast")
    casts = ", ".join(f"{n} {what}" for what, n in report.casts.items())
    print(f"summary: {len(loaded)} of {len(expected)} Tiny-BioMoE tensors present ({report.parameter_count:,} parameters)"
          + (f"; cast: {casts}" if casts else "") + f"; ignored: {len(report.ignored)}"
          + (f" ({', '.join(report.ignored[:8])}{' ...' if len(report.ignored) > 8 else ''})" if report.ignored else ""))
    problems = report.problems(strict=strict)
    if problems:
        print("verdict: REFUSED: " + "; ".join(problems))
        return 1
    print("verdict: loads" + (" with --strict" if strict else "") + (
        f" (the {len(report.ignored)} ignored entries are left out; --strict refuses them)" if report.ignored else ""))
    return 0
