"""``demo --embeddings FILE``: after kill -9 the next run keeps what the killed one wrote (before: it stayed
``FILE.partial``, then the next run truncated it)."""

import pathlib
import signal
import subprocess
import sys
import textwrap

from biomoe_edge.runtime.recording.live import EmbeddingsFile
from biomoe_edge.runtime.sinks import read_jsonl_records

HERE = pathlib.Path(__file__).resolve().parent

WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {sinks!r})
    from sink_records import make_records
    from biomoe_edge.runtime.recording.live import EmbeddingsFile
    out = EmbeddingsFile({path!r})
    records = make_records(50)
    for i in range(0, 50, 5):
        out.write(records[i:i + 5])
    print("written", flush=True)
    sys.stdin.read()  # killed here
""")


def test_a_killed_runs_embeddings_are_recovered_by_the_next_run(tmp_path):
    path = tmp_path / "live.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", WRITER.format(sinks=str(HERE.parent / "sinks"), path=str(path))],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "written"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open(tmp_path / "live.jsonl.partial", "ab") as f:
        f.write(b'{"record": "embedding", "dev')  # as if killed mid-line
    again = EmbeddingsFile(path)
    again.close()
    assert again.recovered_records == 50
    assert len(read_jsonl_records(again.recovered_path)) == 50
    assert oct(again.recovered_path.stat().st_mode & 0o777) == "0o640"
    assert read_jsonl_records(path) == [] and not (tmp_path / "live.jsonl.partial").exists()
