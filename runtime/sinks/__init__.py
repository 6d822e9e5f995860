"""Where embeddings go: callbacks, rotating files, Lab Streaming Layer, MQTT.

``LslSink`` and ``MqttSink`` import pylsl / paho-mqtt only when created.
"""

from biomoe_edge.runtime.sinks.base import GuardedSink, Sink
from biomoe_edge.runtime.sinks.callback import CallbackSink
from biomoe_edge.runtime.sinks.files import JsonlSink, NpzSink, read_jsonl_records, read_npz_records


def __getattr__(name):
    # Lazy: importing the package must not import pylsl or paho.
    if name == "LslSink":
        from biomoe_edge.runtime.sinks.lsl import LslSink

        return LslSink
    if name == "MqttSink":
        from biomoe_edge.runtime.sinks.mqtt import MqttSink

        return MqttSink
    raise AttributeError(name)


__all__ = ["Sink", "GuardedSink", "CallbackSink", "JsonlSink", "NpzSink", "LslSink", "MqttSink",
           "read_jsonl_records", "read_npz_records"]
