"""Recordings: the gateway's input written crash-safe as it happens, read back, replayed through the same
``Pipeline``, exported to EDF+, and turned into labelled datasets (docs/recordings.md).

    writer = RecordingWriter(directory, settings, segment_s=2.0)     # or [[sinks]] kind = "recording"
    recording = open_recording(directory)                            # .settings .streams .blocks() .markers .events
    times, samples = recording.stream("wrist-1", "bvp")
    for record in Replay(recording, engine).records(): ...           # the live embeddings, again
    frame = build_dataset([directory], engine, out="dataset")        # biomoe_edge.dataset.load_dataset reads it

Heavy imports (pyEDFlib, pandas) happen only in the functions that need them.
"""

from .exc import LabelError, ModelMismatchError, RecordingError, SignalFileError
from .reader import Block, Event, Marker, Recording, StreamInfo, open_recording
from .writer import RecordingWriter


def __getattr__(name):
    # Lazy: the gateway imports this package for the writer; replay pulls in the pipeline, sources pandas.
    if name in ("Replay", "replay_config"):
        from . import replay

        return getattr(replay, name)
    if name in ("build_dataset", "embed_to_dataset"):
        from . import embed

        return getattr(embed, name)
    if name in ("open_source", "parse_channel_map", "ImportedRecording"):
        from . import sources

        return getattr(sources, name)
    if name == "export_edf":
        from .edf import export_edf

        return export_edf
    if name in ("read_labels", "WindowLabeller", "LabelInterval", "marker_intervals"):
        from . import labels

        return getattr(labels, name)
    if name in ("write_marker_file", "find_running_recording", "LslMarkerInlet"):
        from . import markers

        return getattr(markers, name)
    if name == "RecordingSink":
        from .sink import RecordingSink

        return RecordingSink
    raise AttributeError(name)


__all__ = ["Block", "build_dataset", "embed_to_dataset", "Event", "ImportedRecording", "LabelError", "LabelInterval", "LslMarkerInlet", "Marker",
           "ModelMismatchError", "Recording", "RecordingError", "RecordingSink", "RecordingWriter", "Replay",
           "SignalFileError", "StreamInfo", "WindowLabeller", "export_edf", "find_running_recording",
           "marker_intervals", "open_recording", "open_source", "parse_channel_map", "read_labels", "replay_config",
           "write_marker_file"]
