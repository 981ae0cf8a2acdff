"""Word indices of the arrays the audio callback shares with the rest of the app.

The callback receives one pointer: the *host table*, an int64 array of addresses and sizes
(H_*). `ctl` is the mailbox of live controls and counters (C_*): the session writes controls,
the callback writes counters, each word has one writer. Telemetry rows (T_*) and scope samples
go out through single-producer/single-consumer rings whose positions live in `ring_index` (R_*).
"""
from engine.sources import SOURCE_CODES

# ---- host table (int64)
H_CTL = 0
H_SLOT0 = 1            # address of slot table 0 (engine/blockabi.py)
H_SLOT1 = 2
H_X = 3                # float64[max_frames]: the source block
H_MAX_FRAMES = 4
H_TEL = 5              # float64[tel_rows, TEL_COLS]
H_TEL_ROWS = 6
H_SCOPE = 7            # float64[scope_rows, SCOPE_COLS]
H_SCOPE_ROWS = 8
H_MIDI = 9             # float64[midi_rows, MIDI_COLS]: events in (written by the session)
H_MIDI_ROWS = 10
H_RING_INDEX = 11      # int64[R_WORDS]
H_FILE = 12            # float64[file_len]: the looped file
H_FILE_LEN = 13
H_FILE_NEXT = 14       # a file waiting to replace it at a block boundary
H_FILE_NEXT_LEN = 15
H_NIN = 16
H_NOUT = 17
H_SCRATCH = 18         # int64[]: clock_gettime's timespec and the block's MIDI event list
H_NOISE = 19           # uint64[1]: white-noise generator state
H_INSERT = 20          # int64[2]: processor tables of the output insert (left, right); 0: none
H_PRE = 21             # float64[2, max_frames]: the output before the insert and safety stage
HOST_WORDS = 24

# ---- ring positions (int64): heads are written by producers, tails by consumers
R_TEL_HEAD = 0
R_TEL_TAIL = 1
R_SCOPE_HEAD = 2
R_MIDI_HEAD = 3
R_MIDI_TAIL = 4
R_WORDS = 8

# ---- ctl (float64)
# written by the callback
C_CALLBACKS = 0
C_FRAMES = 1
C_XRUNS = 2           # callbacks whose status flags report an under/overflow
C_STATUS_BITS = 3     # OR of all status flags seen
C_NONFINITE_OUT = 4   # output samples that were NaN/Inf and became silence
C_LIMITED = 5         # times the limiter started turning the output down (onsets)
C_BAD_INPUT = 6       # input samples that were NaN/Inf/huge (skipped by the learner)
C_TEL_DROPPED = 7     # telemetry rows lost because nobody read them
C_SWAP_ACK = 8
C_RESET_ACK = 9
C_FILE_ACK = 10
C_ACTIVE_SLOT = 11
C_FADE_POS = 12       # samples into the current circuit crossfade, -1 when none
C_LIMIT_GAIN = 13
C_MODE_NOW = 14       # output mode being played (fades to C_OUTPUT_MODE)
C_MODE_FADE = 15
C_PHASE = 16          # generator phase (cycles)
C_LCG = 17            # diff.lib LCG state
C_FILE_POS = 18
C_VOICE_PHASE = 19
C_VOICE_ENV = 20
C_VOICE_FREQ = 21
C_VOICE_GATE = 22
C_VOICE_AMP = 23
C_SONIFY_PHASE = 24
C_SONIFY_LEVEL = 25
C_MIDI_APPLIED = 26
C_IN_PEAK = 27
C_OUT_PEAK = 28
C_CONTROL_ACK = 29    # the last control request taken (processors' prepared controls latched)
# written by the session
C_SAMPLE_RATE = 32
C_OUTPUT_MODE = 33
C_SOURCE = 34
C_SOURCE_HZ = 35
C_SOURCE_GAIN = 36
C_MASTER_GAIN = 37
C_LIMIT_CEILING = 38
C_FADE_LEN = 39       # circuit crossfade length in samples
C_SWAP_REQ = 40
C_RESET_REQ = 41
C_FILE_REQ = 42
C_KNOB_TAU = 43       # seconds for hidden knobs to glide to a new value (no zipper clicks)
C_IN_CHANNEL = 44
C_MUTE = 45
C_RELEASE_S = 46      # limiter release time
C_DC_BLOCK = 47       # 1: a DC blocker on the speaker path (never on what the learner sees)
# written by the callback
C_DC_STATE = 48       # 4 words: the DC blocker's last input and output, left then right
# written by the session
C_CONTROL_REQ = 52    # +1: take every processor's prepared controls at the next block start
CTL_WORDS = 64

# ---- outputs and sources (values of C_OUTPUT_MODE / C_SOURCE)
OUTPUT_MODES = {"target": 0, "learned": 1, "stereo": 2, "error": 3, "loss": 4}
MODE_LOSS = OUTPUT_MODES["loss"]
SOURCES = SOURCE_CODES          # engine/sources.py: name -> the value of C_SOURCE

# ---- telemetry row (float64)
T_BLOCK = 0
T_TIME = 1            # CLOCK_MONOTONIC seconds at the start of the callback
T_FRAMES = 2
T_LOSS = 3
T_SKIPPED = 4         # learner's skipped (NaN) samples so far
T_IN_PEAK = 5
T_OUT_PEAK = 6
T_STATUS = 7          # PortAudio status flags of this callback
T_CPU_US = 8          # time spent in the callback, microseconds
T_BANK = 9
T_NONFINITE = 10
T_LIMITED = 11
T_LEARNING = 12
T_SLOT = 13
T_N_PARAMS = 14
T_SAMPLES = 15        # learner's sample count
T_RESETS = 16         # learner state resets after a non-finite value
T_XRUNS = 17
T_BAD_INPUT = 18
T_CONDITION = 19      # the bank condition's value (LACTOSE banks)
TEL_HEADER = 20
TEL_MAX_PARAMS = 64
TEL_COLS = TEL_HEADER + TEL_MAX_PARAMS

# ---- scope sample (float64)
SC_SOURCE = 0         # what the learner saw
SC_INPUT = 1          # raw input channel (before source selection)
SC_TARGET = 2
SC_LEARNED = 3
SC_OUT_LEFT = 4       # what went to the speakers, after the safety stage
SCOPE_COLS = 5

# ---- MIDI event row (float64)
M_TIME = 0            # CLOCK_MONOTONIC seconds when it arrived
M_KIND = 1
M_A = 2
M_B = 3
M_C = 4
MIDI_COLS = 5
EV_VOICE = 1.0        # a: frequency Hz, b: gate 0/1, c: amplitude 0..1

# PortAudio status flags that mean audio was lost
PA_INPUT_UNDERFLOW = 1
PA_INPUT_OVERFLOW = 2
PA_OUTPUT_UNDERFLOW = 4
PA_OUTPUT_OVERFLOW = 8
XRUN_FLAGS = 15
