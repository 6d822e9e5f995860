"""``biomoe-edge train-head DATASET --inputs MOD:REP[,...] --out DIR``: a task head on a dataset of embeddings.

Writes DIR/head.onnx, DIR/head.json (inputs, classes, fusion, classifier and hyper-parameters, dataset hash,
cross-validated metrics, backbone identity, ONNX Runtime check), DIR/head.pt and DIR/confusion_matrix.png.
Needs PyTorch (build time, like export)."""

from __future__ import annotations

import json

HELP = ("train a task head (fusion + classifier) on a dataset of embeddings, cross-validated by subject; "
        "writes head.onnx + head.json")


def add_arguments(parser) -> None:
    parser.add_argument("dataset", help="dataset of embeddings (biomoe-edge embed --out; Parquet)")
    parser.add_argument("--inputs", required=True, metavar="MOD:REP[,...]",
                        help="what the head reads, in order: one pair for a single representation, several of one "
                             "modality for intra-modality fusion, of several modalities for multimodal fusion "
                             "(e.g. eda:scalogram,eda:recurrence)")
    parser.add_argument("--out", required=True, metavar="DIR", help="head folder to write")
    parser.add_argument("--fusion", choices=("concat", "mean", "weighted"), default="concat",
                        help="how the inputs' embeddings are combined (default concat; weighted: learned per-input "
                             "weights)")
    parser.add_argument("--classifier", choices=("elu-linear", "logistic", "mlp"), default="elu-linear",
                        help="elu-linear: the authors' ELU + Linear head (default); logistic: multinomial logistic "
                             "regression; mlp: one hidden layer")
    parser.add_argument("--cv", default="loso", metavar="loso|K|none",
                        help="cross-validation grouped by subject: leave-one-subject-out (default), K folds of "
                             "subjects, or none")
    parser.add_argument("--epochs", type=int, default=60, help="training epochs (default 60)")
    parser.add_argument("--batch-size", type=int, default=64, help="mini-batch size (default 64)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3, the authors')")
    parser.add_argument("--weight-decay", type=float, default=None,
                        help="L2 weight decay (default 1e-3 for logistic, 0 otherwise)")
    parser.add_argument("--hidden", type=int, default=128, help="mlp hidden units (default 128)")
    parser.add_argument("--dropout", type=float, default=0.2, help="mlp dropout (default 0.2)")
    parser.add_argument("--class-weights", choices=("balanced", "none"), default="balanced",
                        help="loss weights against class imbalance (default balanced: n / (C * count))")
    parser.add_argument("--standardize", choices=("auto", "yes", "no"), default="auto",
                        help="standardise each input with the training mean and std inside the graph (auto: yes for "
                             "logistic and mlp, no for elu-linear)")
    parser.add_argument("--tolerance", type=float, default=0.5, metavar="S",
                        help="windows of two inputs whose ends are closer than S seconds are one window time "
                             "(default 0.5)")
    parser.add_argument("--classes", default=None, metavar="A,B,...",
                        help="the classes in output order (default: the dataset's labels, sorted)")
    parser.add_argument("--seed", type=int, default=0, help="seeds weights and batch order (default 0)")
    parser.add_argument("--device", action="append", default=[], metavar="MOD:REP=DEVICE",
                        help="take this input's windows from DEVICE only, where a subject wears two devices that "
                             "measure it (repeatable), e.g. --device ecg:spectrogram_psd=biomoe-demo-1")


def run(args) -> int:
    from biomoe_edge.training.classifiers import HeadOptions
    from biomoe_edge.training.datasets import parse_device_choices, parse_inputs
    from biomoe_edge.training.head_training import train_head

    options = HeadOptions(fusion=args.fusion, classifier=args.classifier, epochs=args.epochs,
                          batch_size=args.batch_size, learning_rate=args.lr, weight_decay=args.weight_decay,
                          hidden=args.hidden, dropout=args.dropout, class_weights=args.class_weights,
                          standardize={"auto": None, "yes": True, "no": False}[args.standardize], seed=args.seed)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    if classes is not None and (len(classes) < 2 or len(set(classes)) != len(classes)):
        raise ValueError(f"--classes needs at least two distinct names, got {args.classes!r}")
    manifest = train_head(args.dataset, parse_inputs(args.inputs), args.out, options=options, cv=args.cv,
                          tolerance_s=args.tolerance, classes=classes, devices=parse_device_choices(args.device))
    print(summary(manifest, args.out))
    return 0


def summary(manifest: dict, out) -> str:
    cv = manifest["metrics"]["cross_validation"]
    backbone = manifest["backbone"]
    lines = [f"head written to {out}: {', '.join(manifest['inputs'])} -> {manifest['classes']} "
             f"({manifest['fusion']}, {manifest['classifier']}), {manifest['dataset']['windows']} windows of "
             f"{len(manifest['dataset']['subjects'])} subjects"]
    if cv is not None:
        pooled = cv["pooled"]
        lines.append(f"{cv['scheme']}: balanced accuracy {pooled['balanced_accuracy']:.1%} (folds "
                     f"{cv['fold_balanced_accuracy_mean']:.1%} +- {cv['fold_balanced_accuracy_std']:.1%}), macro F1 "
                     f"{pooled['macro_f1']:.3f}, recall {json.dumps(pooled['per_class_recall'])}")
    lines.append(f"ONNX Runtime vs PyTorch: max abs difference {manifest['onnx_check']['max_abs_diff']:.2e}")
    if backbone.get("random_weights"):
        lines.append("backbone: Tiny-BioMoE with RANDOM weights: these figures say the pipeline works, not how the "
                     "published model does")
    return "\n".join(lines)
