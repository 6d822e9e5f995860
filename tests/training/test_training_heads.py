"""Training heads: cross-validation that never trains on a test subject, metrics consistent per fold and pooled,
graphs TensorRT can parse that equal PyTorch in ONNX Runtime, the authors' head and the fusions computed by hand,
class weights, determinism, and the manifest."""

import json

import numpy as np
import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch", reason="training heads needs PyTorch (the export extra)")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("sklearn")

from training_helpers import class_frame, subject_signature_frame  # noqa: E402

from biomoe_edge.manifest import sha256_file  # noqa: E402
from biomoe_edge.training.classifiers import HeadOptions, fit_head, load_head_model  # noqa: E402
from biomoe_edge.training.datasets import DatasetError, read_dataset, save_dataset, training_windows  # noqa: E402
from biomoe_edge.training.head_training import subject_splits, train_head  # noqa: E402

FAST = HeadOptions(epochs=25, classifier="logistic")


def run_ort(path, parts):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {f"input_{i}": np.ascontiguousarray(p, np.float32)
                                           for i, p in enumerate(parts)})[0]


def test_splits_keep_every_subject_on_one_side():
    frame = subject_signature_frame(subjects=7, windows=6)
    fused, _ = training_windows(frame, ["eda:scalogram"])
    for cv in ("loso", 3):
        splits = subject_splits(fused.subjects, cv)
        assert len(splits) == (7 if cv == "loso" else 3)
        tested = np.concatenate([test for _, test in splits])
        assert sorted(tested) == list(range(len(fused)))  # each window tested exactly once
        for train, test in splits:
            assert not set(fused.subjects[train]) & set(fused.subjects[test])


def test_cross_validation_does_not_learn_what_only_a_test_subjects_windows_could_teach(tmp_path):
    """Labels that only subject memory predicts: the head learns them (training set) but cross-validation grouped
    by subject stays at chance; a split that mixed subjects would score like the training set."""
    frame = subject_signature_frame(subjects=8, windows=40)
    manifest = train_head("signatures", ["eda:scalogram"], tmp_path / "head", options=FAST, cv="loso", frame=frame,
                          dataset_sha256="0" * 64)
    assert manifest["metrics"]["training_set"]["balanced_accuracy"] > 0.95
    assert manifest["metrics"]["cross_validation"]["pooled"]["balanced_accuracy"] < 0.65
    for fold in manifest["metrics"]["cross_validation"]["folds"]:
        assert len(fold["test_subjects"]) == 1 and fold["test_subjects"][0] not in fold["train_subjects"]
    # The control: the same head with windows of every subject in training (a leaking split) scores high.
    from sklearn.model_selection import StratifiedKFold

    fused, classes = training_windows(frame, ["eda:scalogram"])
    y = np.array([classes.index(label) for label in fused.labels])
    train, test = next(StratifiedKFold(4, shuffle=True, random_state=0).split(fused.embeddings, y))
    model = fit_head(fused.embeddings[train], y[train], 2, FAST)
    with torch.no_grad():
        leaked = (model(torch.as_tensor(fused.embeddings[test])).argmax(1).numpy() == y[test]).mean()
    assert leaked > 0.9


def test_fold_and_pooled_metrics_agree_with_their_confusion_matrices(tmp_path):
    frame = class_frame(subjects=5, windows=24, separation=1.2, seed=3)
    manifest = train_head("d", ["eda:scalogram"], tmp_path / "head", options=FAST, cv=3, frame=frame,
                          dataset_sha256="0" * 64)
    cv = manifest["metrics"]["cross_validation"]
    assert cv["scheme"] == "3-fold grouped by subject" and len(cv["folds"]) == 3
    pooled = np.array(cv["pooled"]["confusion_matrix"])
    assert (pooled == sum(np.array(f["confusion_matrix"]) for f in cv["folds"])).all()
    assert pooled.sum() == 5 * 24
    recall = np.diag(pooled) / pooled.sum(axis=1)
    precision = np.diag(pooled) / pooled.sum(axis=0)
    f1 = 2 * precision * recall / (precision + recall)
    assert cv["pooled"]["balanced_accuracy"] == pytest.approx(recall.mean())
    assert cv["pooled"]["macro_f1"] == pytest.approx(f1.mean())
    assert list(cv["pooled"]["per_class_recall"].values()) == pytest.approx(list(recall))
    assert cv["pooled"]["classes"] == manifest["classes"] == ["mild", "rest", "strong"]
    assert (tmp_path / "head" / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("fusion, classifier", [("concat", "elu-linear"), ("mean", "logistic"), ("weighted", "mlp"),
                                                ("concat", "mlp"), ("weighted", "elu-linear")])
def test_exported_heads_are_tensorrt_parsable_and_equal_pytorch_in_onnx_runtime(tmp_path, reference_dir, fusion,
                                                                                classifier):
    inputs = ["eda:scalogram", "eda:recurrence", "bvp:spectrogram_psd"]
    frame = class_frame(subjects=3, windows=12, inputs=tuple(inputs))
    manifest = train_head("d", inputs, tmp_path / "head", cv="none", frame=frame, dataset_sha256="0" * 64,
                          options=HeadOptions(epochs=5, fusion=fusion, classifier=classifier))
    graph = onnx.load(str(tmp_path / "head" / "head.onnx"))
    onnx.checker.check_model(graph, full_check=True)
    table = json.loads((reference_dir / "tensorrt10_onnx_operators.json").read_text())["operators"]
    for node in graph.graph.node:
        assert table[node.op_type]["supported"] and "FP32" in table[node.op_type]["types"], node.op_type
    assert [i.name for i in graph.graph.input] == ["input_0", "input_1", "input_2"]
    for value in graph.graph.input:
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param and dims[1].dim_value == 192
    assert [o.name for o in graph.graph.output] == ["probabilities"]
    model = load_head_model(tmp_path / "head" / "head.pt")
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((33, 3, 192)) * 4).astype(np.float32)
    with torch.no_grad():
        expected = torch.softmax(model(torch.as_tensor(x)), 1).numpy()
    got = run_ort(tmp_path / "head" / "head.onnx", [x[:, i] for i in range(3)])
    assert np.abs(got - expected).max() < 1e-5
    assert 0 <= manifest["onnx_check"]["max_abs_diff"] < 1e-5
    assert manifest["onnx"]["operators"] == sorted({n.op_type for n in graph.graph.node})


def test_the_authors_head_and_mean_fusion_computed_by_hand(tmp_path):
    inputs = ["eda:scalogram", "eda:recurrence"]
    frame = class_frame(subjects=3, windows=12, inputs=tuple(inputs))
    train_head("d", inputs, tmp_path / "head", cv="none", frame=frame, dataset_sha256="0" * 64,
               options=HeadOptions(epochs=5, fusion="mean", classifier="elu-linear"))
    state = torch.load(str(tmp_path / "head" / "head.pt"), weights_only=True)["state_dict"]
    linear = {k: v.numpy().astype(np.float64) for k, v in state.items() if k.startswith("classifier.1.")}
    assert linear["classifier.1.weight"].shape == (3, 192)  # ELU -> Linear(192, C): nothing else learnt
    assert [k for k in state if k.startswith("classifier")] == ["classifier.1.weight", "classifier.1.bias"]
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((7, 192)), rng.standard_normal((7, 192))
    fused = (a + b) / 2
    elu = np.where(fused > 0, fused, np.expm1(fused))
    logits = elu @ linear["classifier.1.weight"].T + linear["classifier.1.bias"]
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(run_ort(tmp_path / "head" / "head.onnx", [a, b]), expected, atol=1e-5)


def test_weighted_fusion_learns_to_trust_the_informative_input(tmp_path):
    inputs = ["eda:scalogram", "resp:scalogram"]
    frame = class_frame(subjects=4, windows=30, inputs=tuple(inputs), informative=["resp:scalogram"], separation=2.0)
    manifest = train_head("d", inputs, tmp_path / "head", cv="none", frame=frame, dataset_sha256="0" * 64,
                          options=HeadOptions(epochs=40, batch_size=32, learning_rate=1e-2, fusion="weighted",
                                              classifier="logistic"))
    weights = manifest["fusion_weights"]
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["resp:scalogram"] > 0.7 > weights["eda:scalogram"]


def test_class_weights_lift_the_minority_class():
    """One window in ten is "pain", the classes overlap: unweighted, the head mostly says "rest"; with balanced
    weights it finds most pain windows of subjects it did not see."""
    frame = class_frame(subjects=12, windows=300, classes=("rest",) * 9 + ("pain",), separation=1.0, seed=5)
    fused, classes = training_windows(frame, ["eda:scalogram"])
    y = np.array([classes.index(label) for label in fused.labels])
    train = np.isin(fused.subjects, [f"s{i:02d}" for i in range(10)])
    pain = classes.index("pain")
    assert (y == pain).mean() == pytest.approx(0.1)
    recall = {}
    for kind in ("balanced", "none"):
        model = fit_head(fused.embeddings[train], y[train], 2,
                         HeadOptions(epochs=10, classifier="logistic", class_weights=kind))
        with torch.no_grad():
            predicted = model(torch.as_tensor(fused.embeddings[~train])).argmax(1).numpy()
        recall[kind] = (predicted[y[~train] == pain] == pain).mean()
    assert recall["balanced"] > recall["none"] + 0.25


def test_training_is_deterministic_in_its_seed(tmp_path):
    frame = class_frame(subjects=3, windows=12, inputs=("eda:scalogram", "bvp:scalogram"))
    states = []
    for seed, out in ((3, "a"), (3, "b"), (4, "c")):
        train_head("d", ["eda:scalogram", "bvp:scalogram"], tmp_path / out, cv=3, frame=frame, dataset_sha256="0" * 64,
                   options=HeadOptions(epochs=5, classifier="mlp", seed=seed))
        states.append(torch.load(str(tmp_path / out / "head.pt"), weights_only=True)["state_dict"])
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])
    a, b = (json.loads((tmp_path / out / "head.json").read_text())["metrics"] for out in ("a", "b"))
    assert a == b


def test_the_manifest_names_what_the_head_is_and_was_trained_on(tmp_path):
    inputs = ["bvp:spectrogram_psd", "eda:scalogram"]
    frame = class_frame(subjects=3, windows=12, inputs=tuple(inputs), separation=6.0)
    path = save_dataset(frame, tmp_path / "data.parquet")
    manifest = train_head(path, inputs, tmp_path / "head", options=FAST, cv="loso", classes=["strong", "rest", "mild"])
    for key in ("kind", "inputs", "classes", "fusion", "classifier", "hyperparameters", "dataset_sha256", "metrics",
                "backbone", "onnx_check", "sha256"):
        assert key in manifest
    assert manifest["kind"] == "head" and manifest["inputs"] == inputs
    assert manifest["classes"] == ["strong", "rest", "mild"]
    assert manifest["sha256"] == sha256_file(tmp_path / "head" / "head.onnx")
    assert manifest["dataset_sha256"] == read_dataset(path)[1]  # the dataset's own content hash
    assert manifest["backbone"] == {"checkpoint_sha256": None, "random_weights": True, "seed": 0, "precision": "fp32"}
    assert manifest["hyperparameters"]["learning_rate"] == 1e-3 and manifest["hyperparameters"]["standardize"] is True
    assert manifest["dataset"]["subjects"] == ["s00", "s01", "s02"] and manifest["dataset"]["windows"] == 36
    assert manifest["window_length_s"] == {name: 10.0 for name in inputs}
    # The output order is the classes' order: each class's windows come out as that class.
    fused, _ = training_windows(frame, inputs)
    probabilities = run_ort(tmp_path / "head" / "head.onnx", [fused.embeddings[:, 0], fused.embeddings[:, 1]])
    predicted = np.array(manifest["classes"])[probabilities.argmax(1)]
    assert (predicted == fused.labels.astype(str)).mean() > 0.95


def test_cross_validation_needs_two_subjects_and_at_most_one_fold_per_subject(tmp_path):
    with pytest.raises(DatasetError, match="come from one subject"):
        train_head("d", ["eda:scalogram"], tmp_path / "h", frame=class_frame(subjects=1, windows=9), options=FAST)
    with pytest.raises(DatasetError, match="5 subject folds asked for, but the labelled windows come from 3 subjects"):
        train_head("d", ["eda:scalogram"], tmp_path / "h", frame=class_frame(subjects=3, windows=9), options=FAST, cv=5)
    with pytest.raises(ValueError, match="at least 2 subject folds"):
        train_head("d", ["eda:scalogram"], tmp_path / "h", frame=class_frame(subjects=3, windows=9), options=FAST, cv=1)
    with pytest.raises(DatasetError, match=r"no labelled window of class\(es\) \['severe'\]"):
        train_head("d", ["eda:scalogram"], tmp_path / "h", frame=class_frame(subjects=3, windows=9), options=FAST,
                   classes=["rest", "mild", "strong", "severe"])
