"""``biomoe-edge mark LABEL``: a marker in the running gateway's recording, at the gateway's time now.

The gateway's clock is ``time.monotonic()`` (CLOCK_MONOTONIC, one clock for the whole machine on Linux), so this
separate process reads the same time the gateway stamps its samples with."""

from __future__ import annotations

HELP = "put a marker (stimulus, rating, rest...) into the running recording at the gateway's time now"


def add_arguments(parser) -> None:
    parser.add_argument("label", help="what happened, e.g. pain, rest, stimulus-3")
    parser.add_argument("--recording", default=None, metavar="DIR",
                        help="the recording folder (default: the one recording running on this machine)")
    parser.add_argument("--subject", default=None, help="the marker applies to this subject's devices only")
    parser.add_argument("--device", default=None, help="the marker applies to this device only")
    parser.add_argument("--duration", type=float, default=None, metavar="S",
                        help="the label lasts S seconds (default: until the next marker, or the recording's end)")
    parser.add_argument("--time", type=float, default=None, metavar="S",
                        help="gateway time of the marker (default: now); for adding a marker afterwards")


def run(args) -> int:
    import pathlib

    from biomoe_edge.runtime.recording.markers import find_running_recording, write_marker_file

    directory = pathlib.Path(args.recording) if args.recording else find_running_recording()
    path = write_marker_file(directory, args.label, args.time, subject=args.subject, device=args.device,
                             duration_s=args.duration)
    import json

    marker = json.loads(path.read_text())
    print(f"marked {marker['label']!r} at gateway time {marker['time_s']:.3f} s in {directory}")
    return 0
