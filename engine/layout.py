"""Where things live in the two flat float64 arrays a compiled learner works on.

`cfg` holds what the user sets (the GUI or the command line writes it, the kernel reads it once per
block); `st` holds what the kernel owns (parameters, optimiser state, delay lines, windows). Both are
preallocated once, so a block call never allocates. Fixed header slots are named here; the
circuit-dependent regions get their offsets from the compiler (engine/circuit/compiler.py: Layout).
"""
from engine.words import declare


# cfg header
CF_HEADER = declare(globals(), "CF_", """
    LR                 # learning rate
    LOSS               # loss code (engine/learn/losses.py)
    HUBER              # Huber threshold delta
    WINDOW             # window length W (samples), 1..window capacity
    OPT                # optimiser code (engine/learn/optimizers.py)
    C1                 # momentum mu / RMSProp rho / Adam beta1 / Gauss-Newton's final forgetting factor
    C2                 # Adam beta2 / Gauss-Newton's starting forgetting factor
    EPS                # RMSProp / Adam epsilon
    CLIP               # gradient clipping: max global L2 norm (0 = off)
    DECAY              # learning-rate schedule: factor applied every CF_DECAY_EVERY samples
    DECAY_EVERY        # 0 = constant learning rate
    LR_MIN             # the schedule never takes the learning rate below this
    RANGE_MODE         # 0 = project the accumulator into the range; 1 = diff.lib (no anti-windup)
    LEARN              # 1 = learning runs, 0 = paused (forward pass and loss only)
    TRACE_EVERY        # write a trace row every K samples (0 = none)
    NOTE               # live controls a circuit can read (the host writes them at MIDI events):
    VELOCITY           #   MIDI note number of the voice, and its velocity 0..127
    P0                 # Gauss-Newton: initial P = P0 * (range width)^2 per parameter
    GLIDE              # per-sample share of the way from each hidden value to its goal (0: no
                       #   glide, the hidden values are set directly; the live host sets it)
    SPECTRAL_HOP       # the spectral loss: samples per block (one step per block)
    SPECTRAL_BINS      # the spectral loss: bins in use (up to the layout's capacity)
""")                   # then: hidden values [H], range lows [P], range highs [P], hidden goals [H]

# what Learner.configure writes: the words a kernel swap for new settings takes together
SETTINGS = (CF_LR, CF_LOSS, CF_HUBER, CF_WINDOW, CF_OPT, CF_C1, CF_C2, CF_EPS, CF_CLIP, CF_DECAY,  # noqa: F821
            CF_DECAY_EVERY, CF_LR_MIN, CF_RANGE_MODE, CF_LEARN, CF_P0, CF_SPECTRAL_HOP)  # noqa: F821

# st header
ST_HEADER = 16
declare(globals(), "ST_", """
    N                  # samples processed so far
    SKIPPED            # samples that took no learning step because the input or the target
                       #   was non-finite (bad input)
    LOSS               # loss at the last sample
    WCUR               # window length the running sums currently hold
    WCOUNT             # samples until the window sums are recomputed exactly
    SCHED              # learning-rate schedule factor (starts at 1)
    SCHED_COUNT        # samples until the next schedule step
    T                  # optimiser update count (Adam's t)
    RESETS             # times a circuit's state was reset after going non-finite
    DIVERGED           # steps not taken because the learner diverged: its circuit's output
                       #   or the gradient went non-finite
    DIVERGED_AT        # 1 + the sample count at the first diverged step (0: none yet)
    GN_T               # Gauss-Newton updates since its P was initialised (0: initialise it)
    GN_LAMBDA          # Gauss-Newton's current forgetting factor (ramps to CF_C1)
    SPEC_COUNT         # the spectral loss: samples until its block ends
    SPEC_LOSS          # the spectral loss at the last block's end (what the samples between report)
    SPEC_BLOCKS        # the spectral loss: blocks since the phase tangents last restarted
""", end=ST_HEADER)    # then: theta [P], m [P], v [P], last gradient [P], window sums, rings...

RANGE_PROJECT = 0
RANGE_STRAIGHT_THROUGH = 1
