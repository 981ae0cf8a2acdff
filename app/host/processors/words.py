"""The words of a processor table: a common header every kind has, then the kind's own words
(from KIND_WORDS on). All int64; addresses point at arrays the Processor object keeps alive."""

(PR_KIND,            # KINDS[...]
 PR_MAX_FRAMES,      # capacity of the buffers below
 PR_IN,              # float64[max_frames]: this chunk's input (non-finite samples replaced by 0)
 PR_OUT,             # float64[max_frames]: this chunk's output
 PR_LATENCY,         # samples the output lags the input (a ground truth's learner input is delayed by it)
 PR_RESTARTS,        # times the processor was restarted silent after a non-finite output
 PR_DRY,             # float64[max_frames]: the input delayed by the latency (the learner's x)
 PR_RING,            # float64[ring_len]: the delay line behind PR_DRY
 PR_RING_LEN,        # a power of two above any latency the kind can have
 PR_RING_POS,
 PR_CTL_PENDING,     # float64[ctl_len]: the next control coefficients (written off the audio thread)
 PR_CTL_INDEX,       # int64[ctl_len]: where each goes in PR_CTL_TARGET
 PR_CTL_LEN,
 PR_CTL_TARGET,      # float64[ctl_target_len]: what the kind reads its controls from
 PR_CTL_TARGET_LEN,
 PR_CTL_READY,       # 1: pending controls wait for the next block start
 ) = range(16)
HEADER_WORDS = 16
KIND_WORDS = HEADER_WORDS      # a kind's own words start here
PROCESSOR_WORDS = 64

KINDS = {"sptmod": 1}
