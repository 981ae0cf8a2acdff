"""Where things live in the two flat float64 arrays a compiled learner works on.

`cfg` holds what the user sets (the GUI or the command line writes it, the kernel reads it once per
block); `st` holds what the kernel owns (parameters, optimiser state, delay lines, windows). Both are
preallocated once, so a block call never allocates. Fixed header slots are named here; the
circuit-dependent regions get their offsets from the compiler (engine/circuit/compiler.py: Layout).
"""

# cfg header
CF_LR = 0            # learning rate
CF_LOSS = 1          # loss code (engine/learn/losses.py)
CF_HUBER = 2         # Huber threshold delta
CF_WINDOW = 3        # window length W (samples), 1..window capacity
CF_OPT = 4           # optimiser code (engine/learn/optimizers.py)
CF_C1 = 5            # momentum mu / RMSProp rho / Adam beta1
CF_C2 = 6            # Adam beta2
CF_EPS = 7           # RMSProp / Adam epsilon
CF_CLIP = 8          # gradient clipping: max global L2 norm (0 = off)
CF_DECAY = 9         # learning-rate schedule: factor applied every CF_DECAY_EVERY samples
CF_DECAY_EVERY = 10  # 0 = constant learning rate
CF_LR_MIN = 11       # the schedule never takes the learning rate below this
CF_RANGE_MODE = 12   # 0 = project the accumulator into the range; 1 = diff.lib (no anti-windup)
CF_LEARN = 13        # 1 = learning runs, 0 = paused (forward pass and loss only)
CF_TRACE_EVERY = 14  # write a trace row every K samples (0 = none)
CF_NOTE = 15         # live controls a circuit can read (the host writes them at MIDI events):
CF_VELOCITY = 16     #   MIDI note number of the voice, and its velocity 0..127
CF_GLIDE = 17        # per-sample share of the way from each hidden value to its goal (0: no glide,
                     #   the hidden values are set directly; the live host sets it from a time constant)
CF_HEADER = 18       # then: hidden values [H], range lows [P], range highs [P], hidden goals [H]

# st header
ST_N = 0             # samples processed so far
ST_SKIPPED = 1       # samples that took no learning step (non-finite input or state)
ST_LOSS = 2          # loss at the last sample
ST_WCUR = 3          # window length the running sums currently hold
ST_WCOUNT = 4        # samples until the window sums are recomputed exactly
ST_SCHED = 5         # learning-rate schedule factor (starts at 1)
ST_SCHED_COUNT = 6   # samples until the next schedule step
ST_T = 7             # optimiser update count (Adam's t)
ST_RESETS = 8        # times a circuit's state was reset after going non-finite
ST_HEADER = 16       # then: theta [P], m [P], v [P], last gradient [P], window sums, rings...

RANGE_PROJECT = 0
RANGE_STRAIGHT_THROUGH = 1
