"""The heads: fusion of k embeddings of one window time, then a classifier, in PyTorch (build time).

Fusion (``FUSIONS``):
- ``concat``: the k embeddings side by side, (B, 192 k) (default; the usual early fusion);
- ``mean``: their mean, (B, 192);
- ``weighted``: a learned convex combination, softmax(w) . x, (B, 192): one weight per input, trained with
  the classifier (how much each input counts, readable in the manifest).

Classifiers (``CLASSIFIERS``):
- ``elu-linear``: the authors' head, ELU then Linear(D, C), on the frozen embeddings (Tiny-BioMoE's README);
- ``logistic``: multinomial logistic regression, Linear(D, C) with L2 weight decay;
- ``mlp``: Linear(D, hidden), ELU, Dropout, Linear(hidden, C).

``logistic`` and ``mlp`` standardise each input (training mean and standard deviation, constants of the
graph) by default; ``elu-linear`` reads the embeddings as the authors' head does.

:class:`HeadModel` outputs logits; :class:`ProbabilitiesGraph` is the exported form (k inputs of (B, 192),
softmax probabilities), written with TensorRT-parsable operators only (Sub, Mul, Concat, Add, Gemm/MatMul,
Elu, Softmax).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn

from biomoe_edge.vocabulary import EMBEDDING_DIM

FUSIONS = ("concat", "mean", "weighted")
CLASSIFIERS = ("elu-linear", "logistic", "mlp")
CLASS_WEIGHTS = ("balanced", "none")


@dataclass(frozen=True)
class HeadOptions:
    """Hyper-parameters of one head (all recorded in head.json). ``None`` means the classifier's default:
    ``standardize`` (True for logistic and mlp, False for elu-linear) and ``weight_decay`` (1e-3 for logistic,
    0 otherwise). The authors' head trains with Adam at 1e-3; they publish no epoch count or batch size:
    ``epochs`` and ``batch_size`` here are this SDK's choice."""

    fusion: str = "concat"
    classifier: str = "elu-linear"
    epochs: int = 60
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float | None = None
    hidden: int = 128
    dropout: float = 0.2
    class_weights: str = "balanced"
    standardize: bool | None = None
    seed: int = 0

    def resolved(self) -> "HeadOptions":
        """Check every value; fill the classifier's defaults."""
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {self.fusion!r}")
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {', '.join(CLASSIFIERS)}, got {self.classifier!r}")
        if self.class_weights not in CLASS_WEIGHTS:
            raise ValueError(f"class_weights must be one of {', '.join(CLASS_WEIGHTS)}, got {self.class_weights!r}")
        for name in ("epochs", "batch_size", "hidden"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        weight_decay = self.weight_decay if self.weight_decay is not None else (1e-3 if self.classifier == "logistic" else 0.0)
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        standardize = self.standardize if self.standardize is not None else self.classifier != "elu-linear"
        return replace(self, weight_decay=float(weight_decay), standardize=bool(standardize))

    def as_dict(self) -> dict:
        return asdict(self.resolved())


class HeadModel(nn.Module):
    """Fusion + classifier on (B, k, 192) embeddings -> (B, C) logits."""

    def __init__(self, n_inputs: int, n_classes: int, *, fusion: str = "concat", classifier: str = "elu-linear",
                 hidden: int = 128, dropout: float = 0.2, standardize: bool = False):
        super().__init__()
        if n_inputs < 1 or n_classes < 2:
            raise ValueError(f"a head needs at least one input and two classes, got {n_inputs} and {n_classes}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        if classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {', '.join(CLASSIFIERS)}, got {classifier!r}")
        self.config = {"n_inputs": int(n_inputs), "n_classes": int(n_classes), "fusion": fusion,
                       "classifier": classifier, "hidden": int(hidden), "dropout": float(dropout),
                       "standardize": bool(standardize)}
        self.n_inputs, self.fusion, self.classifier_kind, self.standardize = n_inputs, fusion, classifier, standardize
        self.register_buffer("center", torch.zeros(n_inputs, EMBEDDING_DIM))
        self.register_buffer("scale", torch.ones(n_inputs, EMBEDDING_DIM))
        self.fusion_logits = nn.Parameter(torch.zeros(n_inputs)) if fusion == "weighted" else None
        width = EMBEDDING_DIM * n_inputs if fusion == "concat" else EMBEDDING_DIM
        if classifier == "elu-linear":
            self.classifier = nn.Sequential(nn.ELU(), nn.Linear(width, n_classes))
        elif classifier == "logistic":
            self.classifier = nn.Sequential(nn.Linear(width, n_classes))
        else:
            self.classifier = nn.Sequential(nn.Linear(width, hidden), nn.ELU(), nn.Dropout(dropout),
                                            nn.Linear(hidden, n_classes))

    def set_standardization(self, embeddings: np.ndarray) -> None:
        """Centre and scale each input by the training windows' mean and standard deviation ((n, k, 192))."""
        x = torch.as_tensor(np.asarray(embeddings, np.float32))
        self.center.copy_(x.mean(dim=0))
        self.scale.copy_(1.0 / x.std(dim=0, unbiased=False).clamp_min(1e-6))

    def fusion_weights(self) -> torch.Tensor:
        """The weight of each input in the fused vector (uniform for mean, None for concat)."""
        if self.fusion == "weighted":
            return torch.softmax(self.fusion_logits, dim=0)
        if self.fusion == "mean":
            return torch.full((self.n_inputs,), 1.0 / self.n_inputs)
        return None

    def fuse(self, x: torch.Tensor) -> torch.Tensor:
        if self.standardize:
            x = (x - self.center) * self.scale
        if self.fusion == "concat":
            return x.reshape(x.shape[0], -1)
        return (x * self.fusion_weights()[None, :, None]).sum(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.fuse(x))


class ProbabilitiesGraph(nn.Module):
    """The exported head: ``forward(input_0, ..., input_{k-1})`` each (B, 192) -> softmax probabilities (B, C).

    Per input: ``(x_i - center_i) * scale_i`` when standardised; fusion by Concat, or by a weighted Add of
    constants (mean and learned weights are fixed once trained). Same numbers as ``HeadModel`` + softmax."""

    def __init__(self, model: HeadModel):
        super().__init__()
        self.model = model.eval()
        weights = model.fusion_weights()
        self.register_buffer("weights", weights.detach().clone() if weights is not None else torch.zeros(0))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        model = self.model
        xs = list(inputs)
        if model.standardize:
            xs = [(x - model.center[i]) * model.scale[i] for i, x in enumerate(xs)]
        if model.fusion == "concat":
            fused = torch.cat(xs, dim=1) if len(xs) > 1 else xs[0]
        else:
            fused = xs[0] * self.weights[0]
            for i in range(1, len(xs)):
                fused = fused + xs[i] * self.weights[i]
        return torch.softmax(model.classifier(fused), dim=1)


def class_weight_vector(y: np.ndarray, n_classes: int, kind: str) -> torch.Tensor:
    """``balanced``: n / (C * count_c) per class (scikit-learn's ``class_weight="balanced"``); a class absent
    from the training windows gets weight 0 (it has no loss term anyway)."""
    if kind == "none":
        return torch.ones(n_classes)
    counts = np.bincount(np.asarray(y, np.int64), minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = len(y) / (present.sum() * counts[present])
    return torch.as_tensor(weights, dtype=torch.float32)


@contextlib.contextmanager
def one_thread():
    """Run PyTorch on one thread: a head's matrices are tiny (B x 192 k), so more threads only add
    synchronisation (20x slower per step on a busy 2-core machine, measured), and one thread makes the
    result independent of the machine's core count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fit_head(embeddings: np.ndarray, y: np.ndarray, n_classes: int, options: HeadOptions) -> HeadModel:
    """Train a head on ``embeddings`` (n, k, 192) float32 and class indices ``y`` (n,). Deterministic in
    ``options.seed`` (weights initialised and batches shuffled from it; CPU, one thread)."""
    with one_thread():
        return _fit_head(embeddings, y, n_classes, options.resolved())


def _fit_head(embeddings: np.ndarray, y: np.ndarray, n_classes: int, options: HeadOptions) -> HeadModel:
    x = torch.as_tensor(np.ascontiguousarray(embeddings, dtype=np.float32))
    target = torch.as_tensor(np.asarray(y, dtype=np.int64))
    if x.ndim != 3 or x.shape[2] != EMBEDDING_DIM or len(x) != len(target) or len(x) == 0:
        raise ValueError(f"embeddings must be (n, k, {EMBEDDING_DIM}) with n = len(y) > 0, got {tuple(x.shape)} and {len(target)}")
    torch.manual_seed(options.seed)
    model = HeadModel(x.shape[1], n_classes, fusion=options.fusion, classifier=options.classifier,
                      hidden=options.hidden, dropout=options.dropout, standardize=options.standardize)
    if options.standardize:
        model.set_standardization(embeddings)
    loss_fn = nn.CrossEntropyLoss(weight=class_weight_vector(y, n_classes, options.class_weights))
    optimiser = torch.optim.Adam(model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    rng = np.random.default_rng(options.seed)
    model.train()
    for _ in range(options.epochs):
        order = torch.as_tensor(rng.permutation(len(x)))
        for start in range(0, len(x), options.batch_size):
            batch = order[start:start + options.batch_size]
            optimiser.zero_grad(set_to_none=True)
            loss_fn(model(x[batch]), target[batch]).backward()
            optimiser.step()
    return model.eval()


def predict_probabilities(model: HeadModel, embeddings: np.ndarray, *, batch: int = 4096) -> np.ndarray:
    """Softmax probabilities (n, C) float32 of ``embeddings`` (n, k, 192)."""
    x = torch.as_tensor(np.ascontiguousarray(embeddings, dtype=np.float32))
    with torch.no_grad(), one_thread():
        parts = [torch.softmax(model(x[i:i + batch]), dim=1) for i in range(0, len(x), batch)]
    return torch.cat(parts).numpy() if parts else np.zeros((0, model.config["n_classes"]), np.float32)


def save_head_model(model: HeadModel, path) -> None:
    """The trained PyTorch head (constructor config + state dict), for build-time users such as the bridge."""
    torch.save({"config": dict(model.config), "state_dict": model.state_dict()}, str(path))


def load_head_model(path) -> HeadModel:
    """A :class:`HeadModel` saved by :func:`save_head_model` (``head.pt`` in a head folder), in eval mode."""
    saved = torch.load(str(path), map_location="cpu", weights_only=True)
    config = dict(saved["config"])
    model = HeadModel(config.pop("n_inputs"), config.pop("n_classes"), **config)
    model.load_state_dict(saved["state_dict"])
    return model.eval()
