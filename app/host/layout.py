"""Word indices of the arrays the audio callback shares with the rest of the app.

The callback receives one pointer: the *host table*, an int64 array of addresses and sizes
(H_*). `ctl` is the mailbox of live controls and counters (C_*): the session writes controls,
the callback writes counters, each word has one writer. Telemetry rows (T_*) and scope samples
go out through single-producer/single-consumer rings whose positions live in `ring_index` (R_*).
Each table's words are declared once below (engine/words.py: declare defines the constants).
"""
from engine.sources import SOURCE_CODES
from engine.words import declare

# ---- host table (int64)
HOST_WORDS = 24
declare(globals(), "H_", """
    CTL
    SLOT0              # address of slot table 0 (engine/blockabi.py)
    SLOT1
    X                  # float64[max_frames]: the source block
    MAX_FRAMES
    TEL                # float64[tel_rows, TEL_COLS]
    TEL_ROWS
    SCOPE              # float64[scope_rows, SCOPE_COLS]
    SCOPE_ROWS
    MIDI               # float64[midi_rows, MIDI_COLS]: events in (written by the session)
    MIDI_ROWS
    RING_INDEX         # int64[R_WORDS]
    FILE               # float64[file_len]: the looped file
    FILE_LEN
    FILE_NEXT          # a file waiting to replace it at a block boundary
    FILE_NEXT_LEN
    NIN
    NOUT
    SCRATCH            # int64[]: clock_gettime's timespec and the block's MIDI event list
    NOISE              # uint64[1]: white-noise generator state
    INSERT             # int64[2]: processor tables of the output insert (left, right); 0: none
    PRE                # float64[2, max_frames]: the output before the insert and safety stage
    RETURN             # float64[max_frames]: input channel C_RETURN_CHANNEL this chunk (a device's return)
    SEND               # float64[max_frames]: what output channel C_SEND_CHANNEL plays (to a device)
""", end=HOST_WORDS)

# ---- ring positions (int64): heads are written by producers, tails by consumers
R_WORDS = 8
declare(globals(), "R_", """
    TEL_HEAD
    TEL_TAIL
    SCOPE_HEAD
    MIDI_HEAD
    MIDI_TAIL
""", end=R_WORDS)

# ---- ctl (float64): each word has one writer
CTL_WORDS = 64
CALLBACK_WRITES = 40          # words [0, 40) are written by the callback, [40, 64) by the session
declare(globals(), "C_", """
    CALLBACKS
    FRAMES
    XRUNS              # callbacks whose status flags report an under/overflow
    STATUS_BITS        # OR of all status flags seen
    NONFINITE_OUT      # output samples that were NaN/Inf and became silence
    LIMITED            # times the limiter started turning the output down (onsets)
    BAD_INPUT          # input samples that were NaN/Inf/huge (skipped by the learner)
    TEL_DROPPED        # telemetry rows lost because nobody read them
    SWAP_ACK
    RESET_ACK
    FILE_ACK
    CONTROL_ACK        # the last control request taken (processors' prepared controls latched)
    SCHEDULE_ACK       # the last learning-rate schedule restart taken
    KERNEL_ACK         # the last kernel swap taken (a slot's S_NEXT_FN and its staged settings)
    ACTIVE_SLOT
    FADE_POS           # samples into the current circuit crossfade, -1 when none
    LIMIT_GAIN
    MODE_NOW           # output mode being played (fades to C_OUTPUT_MODE)
    MODE_FADE
    PHASE              # generator phase (cycles)
    LCG                # diff.lib LCG state
    FILE_POS
    VOICE_PHASE
    VOICE_ENV
    VOICE_FREQ
    VOICE_GATE
    VOICE_AMP
    SONIFY_PHASE
    SONIFY_LEVEL
    MIDI_APPLIED
    IN_PEAK
    OUT_PEAK
    DC_STATE:4         # the DC blocker's last input and output, left then right
    LIMITED_SAMPLES    # samples the limiter held below unity gain (time in gain reduction)
""", start=0, end=CALLBACK_WRITES)
declare(globals(), "C_", """
    SAMPLE_RATE
    OUTPUT_MODE
    SOURCE
    SOURCE_HZ
    SOURCE_GAIN
    MASTER_GAIN
    LIMIT_CEILING
    FADE_LEN           # circuit crossfade length in samples
    SWAP_REQ
    RESET_REQ
    FILE_REQ
    CONTROL_REQ        # +1: take every processor's prepared controls at the next block start
    SCHEDULE_REQ       # +1: the learning-rate schedule starts over (a knob turned: the target moved)
    KERNEL_REQ         # +1: a slot with S_NEXT_FN takes that kernel and its staged settings at the next block start
    KNOB_TAU           # seconds for hidden knobs to glide to a new value (no zipper clicks)
    IN_CHANNEL
    MUTE
    RELEASE_S          # limiter release time
    DC_BLOCK           # 1: a DC blocker on the speaker path (never on what the learner sees)
    RETURN_CHANNEL     # the input channel a device returns on (-1: none), copied to H_RETURN
    SEND_CHANNEL       # the output channel that feeds a device (-1: none), played from H_SEND
    INSERT_BYPASS      # 1: the output insert is skipped (the dry output passes, its state waits)
""", start=CALLBACK_WRITES, end=CTL_WORDS)

# ---- outputs and sources (values of C_OUTPUT_MODE / C_SOURCE)
OUTPUT_MODES = {"target": 0, "learned": 1, "stereo": 2, "error": 3, "loss": 4}
MODE_LOSS = OUTPUT_MODES["loss"]
SOURCES = SOURCE_CODES          # engine/sources.py: name -> the value of C_SOURCE

# ---- telemetry row (float64)
TEL_HEADER = declare(globals(), "T_", """
    BLOCK
    TIME               # CLOCK_MONOTONIC seconds at the start of the callback
    FRAMES
    LOSS
    SKIPPED            # learner's skipped (NaN) samples so far
    IN_PEAK
    OUT_PEAK
    STATUS             # PortAudio status flags of this callback
    CPU_US             # time spent in the callback, microseconds
    BANK
    NONFINITE
    LIMITED
    LEARNING
    SLOT
    N_PARAMS
    SAMPLES            # learner's sample count
    RESETS             # learner state resets after a non-finite value
    XRUNS
    BAD_INPUT
    CONDITION          # the bank condition's value (LACTOSE banks)
    DIVERGED           # learner's steps not taken because it diverged, so far
""")
TEL_MAX_PARAMS = 64            # then the parameter values
TEL_COLS = TEL_HEADER + TEL_MAX_PARAMS

# ---- scope sample (float64)
SCOPE_COLS = declare(globals(), "SC_", """
    SOURCE             # what the learner saw
    INPUT              # raw input channel (before source selection)
    TARGET
    LEARNED
    OUT_LEFT           # what went to the speakers, after the safety stage
""")

# ---- MIDI event row (float64)
MIDI_COLS = declare(globals(), "M_", """
    TIME               # CLOCK_MONOTONIC seconds when it arrived
    KIND
    A
    B
    C
""")
EV_VOICE = 1.0        # a: frequency Hz, b: gate 0/1, c: amplitude 0..1

# PortAudio status flags that mean audio was lost
PA_INPUT_UNDERFLOW = 1
PA_INPUT_OVERFLOW = 2
PA_OUTPUT_UNDERFLOW = 4
PA_OUTPUT_OVERFLOW = 8
XRUN_FLAGS = 15
