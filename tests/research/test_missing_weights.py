"""A --checkpoint that names no file says where the published weights come from and offers --random-weights, in
every command that takes it, before any work (it printed "[Errno 2] No such file or directory")."""

import pytest

from biomoe_edge.cli import main
from biomoe_edge.commands.weights import PUBLISHED_CHECKPOINT_URL


@pytest.mark.parametrize("argv", [
    ["demo", "--duration", "1"],
    ["embed", "{tmp}/recording", "--out", "{tmp}/ds"],
    ["export", "--out", "{tmp}/build"],
    ["bridge", "fit", "--paired", "{tmp}/recording", "--new", "bvp:spectrogram_psd", "--head", "{tmp}/head",
     "--out", "{tmp}/bridge"],
])
def test_a_missing_checkpoint_names_the_download_and_random_weights(argv, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path) for a in argv] + ["--checkpoint", str(tmp_path / "Tiny-BioMoE.pth")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"--checkpoint {tmp_path / 'Tiny-BioMoE.pth'}: no such file" in err
    assert PUBLISHED_CHECKPOINT_URL in err and "--random-weights" in err and "Errno" not in err
    assert not (tmp_path / "ds").exists() and not (tmp_path / "build").exists()
