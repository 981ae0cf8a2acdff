"""The dark theme, as palettes (a style sheet would slow every repaint of every widget)."""
from pyqtgraph.Qt import QtGui

DIM, ERROR = "#8a909c", "#ff8a80"


def dark_palette() -> QtGui.QPalette:
    """The dark theme as a palette: unlike a style sheet it costs nothing per repaint."""
    pal = QtGui.QPalette()
    roles = QtGui.QPalette.ColorRole
    for role, color in ((roles.Window, "#15171c"), (roles.WindowText, "#c8ccd4"), (roles.Base, "#1d2027"),
                        (roles.AlternateBase, "#23262e"), (roles.Text, "#c8ccd4"), (roles.Button, "#262a33"),
                        (roles.ButtonText, "#c8ccd4"), (roles.Highlight, "#3d6e9e"),
                        (roles.HighlightedText, "#ffffff"), (roles.ToolTipBase, "#23262e"),
                        (roles.ToolTipText, "#c8ccd4"), (roles.PlaceholderText, "#6b717d"),
                        (roles.Mid, "#2c3038"), (roles.Dark, "#101216"), (roles.Light, "#3a3f4a")):
        pal.setColor(role, QtGui.QColor(color))
    return pal


def tint(widget, color: str):
    """Colour a label's text without a style sheet."""
    pal = widget.palette()
    pal.setColor(QtGui.QPalette.ColorRole.WindowText, QtGui.QColor(color))
    widget.setPalette(pal)
    return widget
