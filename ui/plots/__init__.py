"""The plot widgets of the main window: a loss meter, the loss history, the parameter
trajectories and a triggered scope with spectra. They take numpy arrays and draw them; they know
nothing of audio streams or sessions.

They are built to be cheap at 30 frames per second next to a real-time audio thread: data lives in
preallocated ring buffers, every frame is a `setData` on curves made once, pyqtgraph clips to the
view and peak-downsamples, nothing loops over samples in Python, hidden widgets skip their work
(and catch up when shown), antialiasing is off, and axis ranges move only when they must (a range
change re-lays out the ticks, which costs more than drawing the curve)."""
