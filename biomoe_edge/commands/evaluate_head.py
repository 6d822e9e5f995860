"""``biomoe-edge evaluate-head DIR DATASET --json FILE``: a trained head on another dataset, with ONNX Runtime
(the graph the gateway serves). JSON: balanced_accuracy, macro_f1, per_class_recall, confusion_matrix, ...;
and a confusion-matrix PNG beside it."""

from __future__ import annotations

import json
import pathlib

HELP = "score a trained head on a dataset of embeddings (balanced accuracy, macro F1, recall, confusion matrix)"


def add_arguments(parser) -> None:
    parser.add_argument("head", metavar="DIR", help="head folder (train-head --out)")
    parser.add_argument("dataset", help="dataset of embeddings, e.g. held-out subjects")
    parser.add_argument("--json", required=True, metavar="FILE", help="write the metrics here")
    parser.add_argument("--png", default=None, metavar="FILE",
                        help="confusion-matrix picture (default: FILE with .png instead of .json)")
    parser.add_argument("--tolerance", type=float, default=None, metavar="S",
                        help="window-time matching of the inputs (default: the head's, from training)")


def run(args) -> int:
    from biomoe_edge.training.head_evaluation import evaluate_head

    out = pathlib.Path(args.json)
    png = pathlib.Path(args.png) if args.png else out.with_suffix(".png")
    result = evaluate_head(args.head, args.dataset, png=png, tolerance_s=args.tolerance)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    caveat = (" (backbone with RANDOM weights: not the published model's accuracy)" if result["random_weights"] else "")
    print(f"{result['windows']} windows of {len(result['dataset']['subjects'])} subjects: balanced accuracy "
          f"{result['balanced_accuracy']:.1%}, macro F1 {result['macro_f1']:.3f}{caveat}; written to {out} and {png}")
    if result["overlaps_training_subjects"]:
        print(f"note: subjects {result['overlaps_training_subjects']} were also in the head's training data")
    return 0
