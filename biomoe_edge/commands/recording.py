"""``biomoe-edge recording``: look into a recording, export it to EDF+."""

from __future__ import annotations

HELP = "recordings: info DIR (what it holds), export-edf DIR OUT.edf (EDF+ for MNE, EDFbrowser, pyEDFlib)"


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="streams, samples, markers, events and settings of a recording, as JSON")
    info.add_argument("directory", help="recording folder")
    export = sub.add_parser("export-edf", help="write the recording as one EDF+ file (gaps annotated; "
                                               "docs/recordings.md)")
    export.add_argument("directory", help="recording folder")
    export.add_argument("out", help="the EDF+ file to write, e.g. session.edf")
    export.add_argument("--patient", default=None, help="EDF+ patient code (default: the recording's subjects)")
    export.add_argument("--overwrite", action="store_true", help="replace OUT.edf when it exists")


def run(args) -> int:
    import json

    from biomoe_edge.runtime.recording import open_recording

    import pathlib

    if args.action == "export-edf" and pathlib.Path(args.out).exists() and not args.overwrite:
        raise ValueError(f"{args.out} exists (an annotated export, perhaps): write to another file, or pass "
                         "--overwrite to replace it")
    recording = open_recording(args.directory)
    if args.action == "info":
        print(json.dumps(recording_info(recording), indent=1, default=str))
        return 0
    from biomoe_edge.runtime.recording.edf import export_edf

    summary = export_edf(recording, args.out, patient=args.patient)
    print(f"wrote {summary['path']}: {len(summary['signals'])} signals ({', '.join(summary['signals'])}), "
          f"{summary['duration_s']:.1f} s, {summary['annotations']} annotations; EDF time 0 = gateway time "
          f"{summary['t0']:.6f} s" + ("" if recording.complete else
                                      " (the recording was not closed cleanly: its whole segments only)"))
    return 0


def recording_info(recording) -> dict:
    import collections

    samples = collections.Counter()
    first, last = {}, {}
    for block in recording.blocks():
        key = f"{block.device}/{block.modality}"
        samples[key] += len(block.gateway_times_s)
        if len(block.gateway_times_s):
            first.setdefault(key, float(block.gateway_times_s[0]))
            last[key] = float(block.gateway_times_s[-1])
    return {
        "path": str(recording.path), "complete": recording.complete, "segments": len(recording.segments),
        "partial_segments": [str(p) for p in recording.partial_segments],
        "streams": {f"{d}/{m}": {**info.description, "samples": samples[f"{d}/{m}"],
                                 "first_time_s": first.get(f"{d}/{m}"), "last_time_s": last.get(f"{d}/{m}")}
                    for (d, m), info in recording.streams.items()},
        "markers": [vars(m) for m in recording.markers],
        "events": collections.Counter(e.kind for e in recording.events),
        "settings": recording.settings,
    }
