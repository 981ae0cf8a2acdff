"""Audio plugins from outside (LADSPA, LV2) as ground truths and inserts. Off the audio thread:
discovery (ladspa.py, lv2.py -> catalogue.PluginInfo), the probe in a subprocess (probe.py),
instances and their buffers (instance.py). The callback side is app/host/processors/plugin.py."""
