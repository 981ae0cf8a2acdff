"""The plugin browser: every installed LADSPA/LV2 plugin in a table (search by name, maker,
category or id), the selected one's ports, controls and latency in a detail pane, and what the
probe measured (its cost per block, its latency) once it has run it. The probe runs the plugin in a
child process (a second or two the first time), so it runs on a background thread, only for the
selected plugin; the dialog stays responsive meanwhile.

Two actions: use the plugin as the ground truth, or insert it on the output (`chosen` carries
the action, the plugin's id, for a stereo plugin the channel that is learned, and the starting
control values: those of the factory preset chosen in "start from preset", {} for the defaults)."""
from __future__ import annotations

import html
import math
import threading

from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from app.plugins import registry
from app.words import plural
from ui.theme import DIM, ERROR, tint

TRUTH, INSERT = "truth", "insert"
COLUMNS = ("Name", "Maker", "Category", "API", "In → out", "Latency port")
ID_ROLE = QtCore.Qt.ItemDataRole.UserRole
PROBE_FRAMES = 256                  # the block size the session probes with (the cache key)


def load_catalogue(sample_rate: float) -> list:
    """Every plugin of every API whose module is present (an API whose module is missing, or
    whose library is not installed, simply has no plugins here)."""
    try:
        return registry.catalogue(sample_rate)
    except ImportError:
        out = []
        for api in registry.APIS:
            try:
                out += registry.catalogue(sample_rate, (api,))
            except ImportError:
                pass
        return sorted(out, key=lambda i: (i.name.lower(), i.id))


def search_ids(text: str, sample_rate: float, plugins: list) -> set:
    """The ids of the plugins matching text (registry.search; its words, any case)."""
    try:
        return {i.id for i in registry.search(text, sample_rate)}
    except ImportError:             # an API module is missing: the same match over what there is
        words = text.lower().split()
        return {i.id for i in plugins
                if all(w in f"{i.id} {i.name} {i.maker} {i.category} {' '.join(i.aliases)}".lower()
                       for w in words)}


def control_kind(c) -> str:
    if c.enumerated:
        return "enum: " + ", ".join(f"{lab} ({p:g})" for p, lab in zip(c.points, c.labels))
    if c.toggled:
        return "toggle"
    if c.integer:
        return "integer"
    return "log" if c.log else "linear"


def describe(info) -> str:
    """The detail pane's text (HTML) for one plugin."""
    def esc(t) -> str:
        return html.escape(str(t))
    lines = [f"<b>{esc(info.name)}</b>", f"id: {esc(info.id)}"
             + (f" (also {esc(', '.join(info.aliases))})" if info.aliases else ""),
             f"maker: {esc(info.maker or '—')}", f"category: {esc(info.category or '—')}",
             f"API: {info.api.upper()}" + (f", version {esc(info.version)}" if info.version else "")]
    if info.library:
        lines.append(f"library: {esc(info.library)}")
    if info.unusable:
        lines.append(f"<span style='color:{ERROR}'>cannot be used: {esc(info.unusable)}</span>")
    latency = next((p for p in info.ports if p.index == info.latency_port), None)
    lines.append("latency port: " + ("none" if latency is None else f"yes ({esc(latency.symbol)})"))
    lines.append("<br><b>Ports</b>")
    for p in info.ports:
        lines.append(f"{p.index}: {esc(p.symbol)} — {p.type} {'out' if p.output else 'in'}"
                     + (f" ({esc(p.name)})" if p.name and p.name != p.symbol else ""))
    lines.append(f"<br><b>Controls</b> ({len(info.controls)})")
    for c in info.controls:
        rng = "" if c.enumerated or c.toggled else f" {c.minimum:g} … {c.maximum:g},"
        lines.append(f"{esc(c.symbol)} — {esc(c.name)}: {esc(control_kind(c))},{rng} default {c.default:g}")
    if not info.controls:
        lines.append("none")
    return "<br>".join(lines)


def probe_text(result, sample_rate: float) -> str:
    """What the probe found, in one or two lines."""
    if not result.ok:
        return f"probe failed: {result.reason}"
    us = result.us_per_block
    cost = "—" if not math.isfinite(us) else f"{us:.3g} µs"
    share = "" if not math.isfinite(us) else \
        f" ({100 * us * 1e-6 * sample_rate / PROBE_FRAMES:.2g} % of the block's time)"
    allocates = {True: "yes (it may glitch)", False: "no", None: "not audited"}[result.allocates]
    return (f"probe: {cost} per {PROBE_FRAMES}-frame block{share}; latency {plural(result.latency, 'sample')}; "
            f"allocates memory while running: {allocates}")


class _ProbeBridge(QtCore.QObject):
    """Tells the GUI thread a probe ended (the plugin's id; the result waits in a dict)."""
    done = QtCore.Signal(str)


def plugin_presets(info) -> dict:
    """The plugin's factory presets (label -> {symbol: value}); {} when it has none or they
    cannot be read (an API module or library missing: the plugin still starts at its defaults)."""
    if info is None or info.unusable:
        return {}
    try:
        return registry.factory_presets(info)
    except Exception:
        return {}


class PluginBrowser(QtWidgets.QDialog):
    # action (truth | insert), plugin id, channel, starting control values {symbol: value}
    chosen = QtCore.Signal(str, str, int, object)
    DEFAULTS = "defaults"

    def __init__(self, sample_rate: float = 48000.0, parent=None, mode: str = TRUTH, probe=None):
        super().__init__(parent)
        self.setWindowTitle("Plugins")
        self.resize(1100, 640)
        self.sample_rate = float(sample_rate)
        from app.plugins.probe import probe as default_probe
        self._probe = probe or default_probe
        self.plugins = load_catalogue(self.sample_rate)
        self.by_id = {i.id: i for i in self.plugins}
        self.probes: dict = {}                   # id -> ProbeResult (filled by the probe thread)
        self.presets: dict = {}                  # id -> its factory presets (read on first selection)
        self._lock = threading.Lock()
        self.probing: str | None = None          # the id a thread probes now
        self._pending: str | None = None         # the selected id waiting for that thread
        self._bridge = _ProbeBridge(self)
        self._bridge.done.connect(self._probed)

        self.search = QtWidgets.QLineEdit()
        self.search.setPlaceholderText("search name, maker, category or id (e.g. low pass)")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.filter)
        self.count = QtWidgets.QLabel()
        tint(self.count, DIM)
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.table.setWordWrap(False)
        self._fill()
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.cellDoubleClicked.connect(lambda *_: self._choose(self.mode))
        self.detail = QtWidgets.QTextBrowser()
        self.detail.setPlaceholderText("select a plugin")
        self.probe_status = QtWidgets.QLabel("")
        self.probe_status.setWordWrap(True)
        self.channel_label = QtWidgets.QLabel("learned channel")
        self.channel = QtWidgets.QComboBox()
        self.channel.addItems(["left", "right"])
        self.channel.setToolTip("a stereo plugin: which of its outputs the circuit learns (and you hear)")
        self.preset_label = QtWidgets.QLabel("start from preset")
        self.preset = QtWidgets.QComboBox()
        self.preset.setToolTip("the plugin's own presets: the chosen one's values are where its knobs start")
        self.use_truth = QtWidgets.QPushButton("Use as ground truth")
        self.use_truth.clicked.connect(lambda: self._choose(TRUTH))
        self.use_insert = QtWidgets.QPushButton("Insert on the output")
        self.use_insert.clicked.connect(lambda: self._choose(INSERT))
        self.cancel = QtWidgets.QPushButton("Cancel")
        self.cancel.clicked.connect(self.reject)

        left = QtWidgets.QWidget()
        lv = QtWidgets.QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(self.search)
        lv.addWidget(self.table, 1)
        lv.addWidget(self.count)
        right = QtWidgets.QWidget()
        rv = QtWidgets.QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.addWidget(self.detail, 1)
        rv.addWidget(self.probe_status)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([700, 400])
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.channel_label)
        buttons.addWidget(self.channel)
        buttons.addWidget(self.preset_label)
        buttons.addWidget(self.preset)
        buttons.addStretch(1)
        for b in (self.use_truth, self.use_insert, self.cancel):
            buttons.addWidget(b)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(split, 1)
        layout.addLayout(buttons)
        self.mode = TRUTH
        self.set_mode(mode)
        self.filter("")
        self._show(None)

    # ---- the table
    def _fill(self):
        t = self.table
        t.setSortingEnabled(False)
        t.setRowCount(len(self.plugins))
        grey = QtGui.QBrush(QtGui.QColor(DIM))
        for r, info in enumerate(self.plugins):
            ins, outs = len(info.audio_inputs), len(info.audio_outputs)
            cells = (info.name, info.maker, info.category, info.api.upper(), f"{ins} → {outs}",
                     "yes" if info.latency_port is not None else "")
            for c, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                item.setData(ID_ROLE, info.id)
                if info.unusable:
                    item.setForeground(grey)
                    item.setToolTip(f"cannot be used: {info.unusable}")
                elif c == 0:
                    item.setToolTip(info.id)
                t.setItem(r, c, item)
        t.setSortingEnabled(True)
        t.sortItems(0, QtCore.Qt.SortOrder.AscendingOrder)
        t.resizeColumnsToContents()
        for c, widest in enumerate((230, 150, 110)):
            t.setColumnWidth(c, min(t.columnWidth(c), widest))

    def _row_id(self, row: int) -> str:
        return self.table.item(row, 0).data(ID_ROLE)

    def filter(self, text: str | None = None):
        """Show only the plugins matching the search text (every word, any case)."""
        text = self.search.text() if text is None else text
        ids = search_ids(text, self.sample_rate, self.plugins) if text.strip() else None
        shown = 0
        for row in range(self.table.rowCount()):
            hide = ids is not None and self._row_id(row) not in ids
            self.table.setRowHidden(row, hide)
            shown += not hide
        usable = sum(1 for i in self.plugins if not i.unusable)
        self.count.setText(f"{shown} of {plural(len(self.plugins), 'plugin')} shown ({usable} usable here)")

    def visible_ids(self) -> list[str]:
        return [self._row_id(r) for r in range(self.table.rowCount()) if not self.table.isRowHidden(r)]

    def select(self, plugin_id: str) -> bool:
        """Select a plugin by id or alias (shown even when the search hid it)."""
        info = self.by_id.get(plugin_id) or next((i for i in self.plugins if plugin_id in i.aliases), None)
        if info is None:
            return False
        for row in range(self.table.rowCount()):
            if self._row_id(row) == info.id:
                self.table.setRowHidden(row, False)
                self.table.selectRow(row)
                self.table.scrollToItem(self.table.item(row, 0))
                return True
        return False

    @property
    def selected(self):
        rows = self.table.selectionModel().selectedRows()
        return None if not rows else self.by_id.get(self._row_id(rows[0].row()))

    def set_mode(self, mode: str):
        """Which action is the default (Return, double-click)."""
        self.mode = mode
        self.setWindowTitle("Ground truth from a plugin" if mode == TRUTH else "Insert a plugin on the output")
        (self.use_truth if mode == TRUTH else self.use_insert).setDefault(True)
        (self.use_insert if mode == TRUTH else self.use_truth).setDefault(False)

    # ---- the detail pane and the probe
    def _selection_changed(self):
        info = self.selected
        self._show(info)
        if info is not None and not info.unusable and info.id not in self.probes:
            self._start_probe(info.id)

    def _show(self, info):
        if info is None:
            self.detail.clear()
            self.probe_status.setText("")
        else:
            self.detail.setHtml(describe(info))
        stereo = info is not None and len(info.audio_outputs) > 1
        self.channel_label.setVisible(stereo)
        self.channel.setVisible(stereo)
        self._show_presets(info)
        if info is not None:
            self._show_probe(info)
        self._enable()

    def _show_presets(self, info):
        """The "start from preset" choice: defaults, then the plugin's presets (hidden when none)."""
        presets = {}
        if info is not None and not info.unusable:
            if info.id not in self.presets:
                self.presets[info.id] = plugin_presets(info)
            presets = self.presets[info.id]
        self.preset.clear()
        self.preset.addItem(self.DEFAULTS)
        self.preset.setItemData(0, "the plugin's default values", QtCore.Qt.ItemDataRole.ToolTipRole)
        for label, values in presets.items():
            self.preset.addItem(label)
            tip = ", ".join(f"{sym} = {v:g}" for sym, v in values.items()) or "no control values"
            self.preset.setItemData(self.preset.count() - 1, tip, QtCore.Qt.ItemDataRole.ToolTipRole)
        self.preset.setCurrentIndex(0)
        self.preset.setEnabled(bool(presets))
        self.preset_label.setVisible(bool(presets))
        self.preset.setVisible(bool(presets))

    def preset_values(self) -> dict:
        """The chosen preset's control values ({} for the defaults, or a plugin without presets)."""
        info = self.selected
        if info is None or self.preset.currentIndex() <= 0:
            return {}
        return dict(self.presets.get(info.id, {}).get(self.preset.currentText(), {}))

    def _show_probe(self, info):
        result = self.probes.get(info.id)
        if info.unusable:
            text, color = "not probed: it cannot be used here", DIM
        elif result is None:
            text, color = "probing… (the plugin runs in a separate process the first time)", DIM
        else:
            text, color = probe_text(result, self.sample_rate), (None if result.ok else ERROR)
        self.probe_status.setText(text)
        pal = self.probe_status.palette()
        pal.setColor(QtGui.QPalette.ColorRole.WindowText,
                     QtGui.QColor(color) if color else self.palette().color(QtGui.QPalette.ColorRole.WindowText))
        self.probe_status.setPalette(pal)

    def _enable(self):
        info = self.selected
        result = None if info is None else self.probes.get(info.id)
        ok = info is not None and not info.unusable and (result is None or result.ok)
        self.use_truth.setEnabled(ok)
        self.use_insert.setEnabled(ok)

    def _start_probe(self, plugin_id: str):
        if self.probing is not None:             # one probe at a time: the latest selection waits
            if plugin_id != self.probing:
                self._pending = plugin_id
            return
        self.probing, self._pending = plugin_id, None
        info, sample_rate, probe, bridge = self.by_id[plugin_id], self.sample_rate, self._probe, self._bridge
        probes, lock = self.probes, self._lock

        def work():
            from app.plugins.probe import ProbeResult
            try:
                result = probe(info, sample_rate, PROBE_FRAMES)
            except Exception as e:               # the probe itself failed (not the plugin)
                result = ProbeResult(ok=False, reason=f"could not be probed ({e})")
            with lock:
                probes[info.id] = result
            try:
                bridge.done.emit(info.id)
            except RuntimeError:                 # the dialog is gone
                pass
        threading.Thread(target=work, name=f"dualtone-probe {plugin_id}", daemon=True).start()

    def _probed(self, plugin_id: str):
        self.probing = None
        info = self.selected
        if info is not None and info.id == plugin_id:
            self._show_probe(info)
            self._enable()
        pending, self._pending = self._pending, None
        if pending is not None and pending not in self.probes and info is not None and info.id == pending:
            self._start_probe(pending)

    # ---- the actions
    def _choose(self, action: str):
        info = self.selected
        if info is None or not (self.use_truth if action == TRUTH else self.use_insert).isEnabled():
            return
        channel = self.channel.currentIndex() if len(info.audio_outputs) > 1 else 0
        values = self.preset_values()
        self.accept()
        self.chosen.emit(action, info.id, channel, values)
