"""MQTT topic templates: only the documented fields, and field values escaped so that they stay one topic level.

A device name is chosen by whoever makes (or imitates) the wearable: "TICKR #3" is a real one. In a topic, ``/``
starts a new level, ``+`` and ``#`` are wildcards that make a publish illegal (paho raises ValueError), NUL is
forbidden (brokers drop the connection), control characters are discouraged and a leading ``$`` names broker
topics. Field values are therefore percent-encoded (``%`` itself too, so the encoding is reversible with
``urllib.parse.unquote``); the template's own text is checked once, when the sink is configured.
"""

from __future__ import annotations

import string

#: The fields each template may use.
EMBEDDING_TOPIC_FIELDS = ("device", "modality", "representation")
PREDICTION_TOPIC_FIELDS = ("subject",)
#: MQTT's limit on a topic's UTF-8 length.
MAX_TOPIC_BYTES = 65535


def _needs_escape(ch: str) -> bool:
    code = ord(ch)
    return ch in "%/+#$" or code < 0x20 or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF)


def escape_level(value: str) -> str:
    """``value`` as one safe topic level: ``%``, ``/``, ``+``, ``#``, ``$`` and control characters percent-encoded."""
    return "".join("".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass")) if _needs_escape(ch) else ch
                   for ch in str(value))


def check_topic_template(template: str, fields) -> None:
    """ValueError unless ``template`` is a topic whose only placeholders are plain ``{field}`` from ``fields``
    (no attribute or index access, no conversion, no format spec) and whose fixed text is a legal publish topic."""
    if not isinstance(template, str) or not template:
        raise ValueError("a topic template must be a non-empty string")
    used = []
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad template {template!r}: {exc}") from None
    literal = []
    for text, field, spec, conversion in parts:
        literal.append(text)
        if field is None:
            continue
        if field not in fields or spec or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"bad placeholder {shown}: only {', '.join('{' + f + '}' for f in fields)}")
        used.append(field)
    fixed = "".join(literal)
    bad = sorted({ch for ch in fixed if ch in "+#" or _needs_escape(ch) and ch not in "%$/"})
    if bad:
        raise ValueError(f"the topic's fixed text contains {', '.join(repr(c) for c in bad)}: wildcards and control "
                         "characters cannot be published to")
    if template.startswith("$"):
        raise ValueError("a topic starting with '$' is the broker's own ($SYS...), not for publishing")
    if len(fixed.encode("utf-8")) > 1024:
        raise ValueError("the topic's fixed text is longer than 1024 bytes")


def format_topic(template: str, **values) -> str:
    """The template filled with escaped values (each stays within its level)."""
    return template.format_map({name: escape_level(value) for name, value in values.items()})
