"""The dark theme, as palettes (a style sheet would slow every repaint of every widget)."""
from pyqtgraph.Qt import QtGui

BG = "#15171c"              # plot and window background
FG = "#c8ccd4"              # text
TRACK = "#23262e"           # the groove of bars and meters
TARGET = "#4fc3f7"          # what the ground truth does
LEARNED = "#ffb74d"         # what the learnable circuit does
LOSS = "#e57373"
DIM, ERROR = "#8a909c", "#ff8a80"
UNDERLINE = "#ff5252"       # an error's place in an edited text
HIGHLIGHT = "#ffffff"
# One colour per learnable parameter, in order; a hidden value takes its parameter's colour.
PALETTE = ("#4fc3f7", "#ffb74d", "#81c784", "#e57373", "#ba68c8", "#fff176",
           "#4db6ac", "#f06292", "#a1887f", "#90a4ae", "#aed581", "#7986cb")


def dark_palette() -> QtGui.QPalette:
    """The dark theme as a palette: unlike a style sheet it costs nothing per repaint."""
    pal = QtGui.QPalette()
    roles = QtGui.QPalette.ColorRole
    for role, color in ((roles.Window, BG), (roles.WindowText, FG), (roles.Base, "#1d2027"),
                        (roles.AlternateBase, TRACK), (roles.Text, FG), (roles.Button, "#262a33"),
                        (roles.ButtonText, FG), (roles.Highlight, "#3d6e9e"),
                        (roles.HighlightedText, "#ffffff"), (roles.ToolTipBase, TRACK),
                        (roles.ToolTipText, FG), (roles.PlaceholderText, "#6b717d"),
                        (roles.Mid, "#2c3038"), (roles.Dark, "#101216"), (roles.Light, "#3a3f4a")):
        pal.setColor(role, QtGui.QColor(color))
    return pal


def tint(widget, color: str):
    """Colour a label's text without a style sheet."""
    pal = widget.palette()
    pal.setColor(QtGui.QPalette.ColorRole.WindowText, QtGui.QColor(color))
    widget.setPalette(pal)
    return widget
