"""``biomoe_edge.durable``: a crash-safe write leaves the old content or the new, and never follows a link planted
at its temporary name."""

import pytest

from biomoe_edge.durable import atomic_write_bytes, atomic_write_text, move_into_place


def test_atomic_write_replaces_whole_and_leaves_no_partial(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_text(target, "old\n")
    atomic_write_bytes(target, b"new\n")
    assert target.read_bytes() == b"new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_stale_partial_and_a_planted_link_are_not_followed(tmp_path):
    target, victim = tmp_path / "pins.json", tmp_path / "victim"
    victim.write_text("keep me")
    (tmp_path / "pins.json.partial").symlink_to(victim)
    atomic_write_text(target, "{}", mode=0o600)
    assert victim.read_text() == "keep me"
    assert target.read_text() == "{}" and (target.stat().st_mode & 0o777) == 0o600


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "engine.plan"
    atomic_write_bytes(target, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, object())  # not bytes: fails while writing
    assert target.read_bytes() == b"old" and not (tmp_path / "engine.plan.partial").exists()


def test_move_into_place(tmp_path):
    partial, final = tmp_path / "x.partial", tmp_path / "x.npz"
    partial.write_bytes(b"data")
    assert move_into_place(partial, final) == final and final.read_bytes() == b"data" and not partial.exists()
