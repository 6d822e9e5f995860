"""Model identity in records, and the backbone binding of heads and bridges."""

from biomoe_edge.identity import backbone_identity, backbone_mismatch, model_identity

CHECKPOINT = "c" * 64


def test_a_model_without_a_known_checkpoint_counts_as_random_weights():
    identity = model_identity({"kind": "onnxruntime", "model_sha256": "a" * 64, "precision": "fp32"})
    assert identity["random_weights"] is True
    assert identity["checkpoint_sha256"] is None


def test_a_checkpoint_named_by_the_engine_is_real_weights_and_carries_no_seed():
    identity = model_identity({"model_sha256": "a" * 64, "checkpoint_sha256": CHECKPOINT, "precision": "fp16",
                               "seed": 3})
    assert identity["random_weights"] is False
    assert identity["seed"] is None
    assert backbone_identity(identity) == {"checkpoint_sha256": CHECKPOINT, "random_weights": False, "seed": None,
                                           "precision": "fp16"}


def test_the_engine_saying_random_weights_wins_over_a_stray_checkpoint_hash():
    identity = model_identity({"checkpoint_sha256": CHECKPOINT, "random_weights": True, "seed": 0, "precision": "fp32"})
    assert identity["random_weights"] is True
    assert backbone_identity(identity)["checkpoint_sha256"] is None


def test_mismatch_names_both_backbones():
    trained = backbone_identity({"checkpoint_sha256": CHECKPOINT, "random_weights": False, "precision": "fp32"})
    assert backbone_mismatch(trained, dict(trained)) is None
    other_precision = dict(trained, precision="fp16")
    message = backbone_mismatch(trained, other_precision)
    assert "fp32" in message and "fp16" in message
    random = backbone_identity({"random_weights": True, "seed": 0, "precision": "fp32"})
    message = backbone_mismatch(trained, random)
    assert CHECKPOINT[:16] in message and "random weights (seed 0)" in message
    assert backbone_mismatch(random, backbone_identity({"random_weights": True, "seed": 1, "precision": "fp32"}))
