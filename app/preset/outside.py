"""A preset's recording and device fields: ground truths that live outside the preset file.

    "recording": {"dry": "recordings/dry.wav", "wet": "recordings/wet.wav", "channel": null,
                  "dry_sha256": "...", "wet_sha256": "..."}     # alignment: hidden["align"]
    "device": {"return_channel": 1, "send_channel": 2, "latency": 245, "polarity": "normal"}

Recording paths are relative to the preset's folder when the files sit inside it; a file whose
content hash differs from the one saved is refused. A device's latency is what was last
measured: it is measured again whenever the preset is opened (cables and buffers change)."""
from __future__ import annotations

import re
from pathlib import Path

from app.preset.fields import MAX_PATH, _Check, _encodable, _show, path_to_store, stored_path
from app.recordings.hardware import DeviceSpec
from app.recordings.pair import RecordingError, RecordingSpec, sha256_of

RECORDING_FIELDS = ("dry", "wet", "channel", "dry_sha256", "wet_sha256")
DEVICE_FIELDS = ("return_channel", "send_channel", "latency", "polarity")


def _given(c: _Check, doc, key: str, fields: tuple, reads: str | None) -> bool:
    """Whether the field `key` holds an object to check further (its unknown fields noted); a
    null one is a problem only when the target reads `key`."""
    if doc is None:
        if reads == key:
            c.add(f"target: it reads '{key}' but the preset names no {key} ({key}: null)")
        return False
    if not isinstance(doc, dict):
        c.add(f"{key} must be an object or null, got {_show(doc)}")
        return False
    c.fields(doc, fields, f"{key}: ")
    return True


def recording_from(c: _Check, doc, origin: str, reads: str | None) -> RecordingSpec | None:
    """The recording field checked: shape, both files there, the same content as saved."""
    n = len(c.problems)
    if not _given(c, doc, "recording", RECORDING_FIELDS, reads):
        return None
    for key in ("dry", "wet"):
        v = doc.get(key)
        if not (isinstance(v, str) and 0 < len(v) <= MAX_PATH and _encodable(v)):
            c.add(f"recording: {key} must be a file path, got {_show(v)}")
        digest = doc.get(f"{key}_sha256")
        if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-fA-F]{64}", digest)):
            c.add(f"recording: {key}_sha256 must be 64 hexadecimal digits, got {_show(digest)}")
    channel = doc.get("channel")
    if not (channel is None or channel == "mix" or (type(channel) is int and 1 <= channel <= 64)):
        c.add(f"recording: channel must be null, 'mix' or a channel number from 1, got {_show(channel)}")
    if len(c.problems) != n:
        return None
    if reads is not None and reads != "recording":
        c.add("recording: a recording is given but the target does not read 'recording' (e.g. y = recording)")
    spec = RecordingSpec(str(stored_path(doc["dry"], origin)), str(stored_path(doc["wet"], origin)), channel,
                         doc["dry_sha256"].lower(), doc["wet_sha256"].lower())
    for key, path, want in (("dry", spec.dry, spec.dry_sha256), ("wet", spec.wet, spec.wet_sha256)):
        try:
            got = sha256_of(path)
        except OSError as e:
            c.add(f"recording: the {key} file {path}: {e.strerror or e}")
            continue
        if got != want:
            c.add(f"recording: {path} is not the {key} recording this preset was saved with "
                  f"(content hash {got[:12]}…, expected {want[:12]}…)")
    return spec


def recording_json(spec: RecordingSpec | None, folder: Path | None) -> dict | None:
    if spec is None:
        return None
    return {"dry": path_to_store(spec.dry, folder), "wet": path_to_store(spec.wet, folder), "channel": spec.channel,
            "dry_sha256": spec.dry_sha256, "wet_sha256": spec.wet_sha256}


def device_from(c: _Check, doc, reads: str | None) -> DeviceSpec | None:
    n = len(c.problems)
    if not _given(c, doc, "device", DEVICE_FIELDS, reads):
        return None
    for key in ("return_channel", "send_channel"):
        v = doc.get(key)
        if not (type(v) is int and 1 <= v <= 64):
            c.add(f"device: {key} must be a channel number from 1 to 64, got {_show(v)}")
    latency = doc.get("latency")
    if not (latency is None or (type(latency) is int and 0 <= latency <= 1 << 20)):
        c.add(f"device: latency must be null or a whole number of samples, got {_show(latency)}")
    polarity = doc.get("polarity", "normal")
    if polarity not in ("normal", "inverted"):
        c.add(f"device: polarity must be 'normal' or 'inverted', got {_show(polarity)}")
    if len(c.problems) != n:
        return None
    if reads is not None and reads != "device":
        c.add("device: a device is given but the target does not read 'device' (e.g. y = device)")
    return DeviceSpec(doc["return_channel"] - 1, doc["send_channel"] - 1, latency,
                      -1 if polarity == "inverted" else 1)


def device_json(spec: DeviceSpec | None) -> dict | None:
    if spec is None:
        return None
    return {"return_channel": spec.return_channel + 1, "send_channel": spec.send_channel + 1,
            "latency": spec.latency, "polarity": "inverted" if spec.polarity < 0 else "normal"}


__all__ = ["recording_from", "recording_json", "device_from", "device_json", "RecordingError"]
