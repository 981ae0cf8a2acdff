"""Processors: what runs inside the audio callback besides the learner's kernel — a ground truth
the learner listens to (its output feeds the target's `sptmod`, `plugin`, `recording` or
`device` signal) or an insert effect on the output. Each is a tagged int64 table: a common header (words.py: kind, buffers, latency, restarts,
pending controls) and the kind's own words after it. The callback only calls run_as_target,
run_as_insert and latch_controls (run.py), which dispatch on the kind; a new kind is a module
with its Processor subclass and step/reset functions, and one row in run.py's dispatch.
"""
from app.host.processors.base import Processor
from app.host.processors.run import latch_controls, run_as_insert, run_as_target
from app.host.processors.device import DeviceProcessor
from app.host.processors.plugin import PluginProcessor
from app.host.processors.recording import RecordingProcessor
from app.host.processors.sptmod import SptModProcessor
from app.host.processors.words import HEADER_WORDS, KINDS, PROCESSOR_WORDS

__all__ = ["Processor", "SptModProcessor", "PluginProcessor", "RecordingProcessor", "DeviceProcessor", "run_as_target", "run_as_insert", "latch_controls",
           "PROCESSOR_WORDS", "HEADER_WORDS", "KINDS"]
