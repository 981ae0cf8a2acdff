"""The words of a processor table: a common header every kind has, then the kind's own words
(from KIND_WORDS on). All int64; addresses point at arrays the Processor object keeps alive."""
from engine.words import declare

PROCESSOR_WORDS = 64
HEADER_WORDS = declare(globals(), "PR_", """
    KIND               # KINDS[...]
    MAX_FRAMES         # capacity of the buffers below
    IN                 # float64[max_frames]: this chunk's input (non-finite samples replaced by 0)
    OUT                # float64[max_frames]: this chunk's output
    LATENCY            # samples the output lags the input (a ground truth's learner input is delayed by it)
    RESTARTS           # times the processor was restarted silent after a non-finite output
    DRY                # float64[max_frames]: the input delayed by the latency (the learner's x)
    RING               # float64[ring_len]: the delay line behind PR_DRY
    RING_LEN           # a power of two above any latency the kind can have
    RING_POS
    CTL_PENDING        # float64[ctl_len]: the next control coefficients (written off the audio thread)
    CTL_INDEX          # int64[ctl_len]: where each goes in PR_CTL_TARGET
    CTL_LEN
    CTL_TARGET         # float64[ctl_target_len]: what the kind reads its controls from
    CTL_TARGET_LEN
    CTL_READY          # 1: pending controls wait for the next block start
    OWN_DRY            # 1: the kind writes PR_DRY itself (a recording's dry file), no delay line
    SEAM               # where in this chunk a looping kind started over (-1: nowhere)
""", end=PROCESSOR_WORDS)
KIND_WORDS = HEADER_WORDS      # a kind's own words start here

KINDS = {"sptmod": 1, "plugin": 2, "recording": 3, "device": 4}
