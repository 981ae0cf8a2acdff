"""`devices`: the audio devices and MIDI ports Dualtone can use."""
from __future__ import annotations

import json


def cmd_devices(a) -> int:
    from app.host.stream import list_devices
    devices = list_devices()
    midi_in, midi_out, midi_note = [], [], ""
    try:
        from app.midi.ports import list_output_ports, list_ports
        midi_in, midi_out = list_ports(), list_output_ports()
    except Exception as e:            # no MIDI backend: still list the audio devices
        midi_note = str(e).splitlines()[0] if str(e) else type(e).__name__
    if a.json:
        print(json.dumps({"audio": devices, "midi_inputs": midi_in, "midi_outputs": midi_out}))
        return 0
    print("Audio devices:")
    if not devices:
        print("  none (Dualtone will learn on a virtual clock, without sound)")
    for d in devices:
        print(f"  [{d['index']}] {d['name']} ({d['host_api']}): {d['inputs']} in, {d['outputs']} out, "
              f"{d['default_samplerate']:g} Hz")
    print("MIDI inputs:")
    for name in midi_in:
        print(f"  {name}")
    if not midi_in:
        print(f"  none{' (' + midi_note + ')' if midi_note else ''}")
    print("MIDI outputs:")
    for name in midi_out:
        print(f"  {name}")
    if not midi_out:
        print("  none")
    return 0


def add_parser(sub):
    dp = sub.add_parser("devices", help="list audio devices and MIDI ports")
    dp.add_argument("--json", action="store_true")
    dp.set_defaults(func=cmd_devices)

