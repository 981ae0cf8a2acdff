"""The circuit panel: a factory preset chooser, the learnable circuit, the ground-truth circuit and
the parameter declarations, checked on every keystroke with errors marked at their line and column;
Apply hands the checked spec to the window, which swaps it in live."""
from __future__ import annotations

from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from ui.theme import DIM, ERROR, UNDERLINE, tint

from app.preset.fields import TEXT_LIMITS
from app.workspace import NEW_DECLARATION, UNDECLARED, Problem, check_edit, parse_banks

ERROR_LINES = 3                 # problems shown under the editors (all of them in the tooltip)
DESCRIPTION_LIMIT = TEXT_LIMITS["description"]   # what a preset can store; longer would not save
MONO = QtGui.QFont("DejaVu Sans Mono")
MONO.setStyleHint(QtGui.QFont.StyleHint.Monospace)


class CodeEdit(QtWidgets.QPlainTextEdit):
    """A small monospace editor that can underline one error position."""

    def __init__(self, placeholder: str, lines: int = 3):
        super().__init__()
        self.setFont(MONO)
        self.setPlaceholderText(placeholder)
        self.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.NoWrap)
        self.setTabChangesFocus(True)
        h = self.fontMetrics().lineSpacing() * lines + 12
        self.setMinimumHeight(h)
        self.setMaximumHeight(h + self.fontMetrics().lineSpacing() * 3)
        self.marked: tuple[int, int] | None = None

    def mark(self, line: int | None, col: int | None):
        """Underline the character at (line, col), 1-based; None clears."""
        self.marked = None if line is None else (line, col)
        if line is None:
            self.setExtraSelections([])
            return
        block = self.document().findBlockByNumber(max(line - 1, 0))
        cursor = QtGui.QTextCursor(block)
        col0 = min(max(col - 1, 0), max(len(block.text()) - 1, 0))
        cursor.movePosition(QtGui.QTextCursor.MoveOperation.Right, n=col0)
        cursor.movePosition(QtGui.QTextCursor.MoveOperation.EndOfBlock
                            if not block.text() else QtGui.QTextCursor.MoveOperation.Right,
                            QtGui.QTextCursor.MoveMode.KeepAnchor)
        sel = QtWidgets.QTextEdit.ExtraSelection()
        sel.cursor = cursor
        fmt = QtGui.QTextCharFormat()
        fmt.setUnderlineStyle(QtGui.QTextCharFormat.UnderlineStyle.WaveUnderline)
        fmt.setUnderlineColor(QtGui.QColor(UNDERLINE))
        fmt.setBackground(QtGui.QColor(255, 82, 82, 60))
        sel.format = fmt
        self.setExtraSelections([sel])


class CircuitPanel(QtWidgets.QGroupBox):
    apply_requested = QtCore.Signal(object)       # a CircuitSpec
    factory_chosen = QtCore.Signal(str)           # a factory preset name
    edited = QtCore.Signal()                      # the texts or the description changed

    def __init__(self, factory_names, sample_rate_fn, hidden_fn, settings_fn):
        super().__init__("Circuit")
        self._sample_rate, self._hidden, self._settings = sample_rate_fn, hidden_fn, settings_fn
        self.factory = QtWidgets.QComboBox()
        self.factory.setObjectName("preset")
        self.factory.setToolTip("the preset you are working on (• : changed since it was opened or "
                                "saved); pick a factory preset to open it")
        self.factory.addItem("untitled")              # item 0: the current preset's name
        self.factory.addItems(list(factory_names))
        self.factory.activated.connect(self._factory_activated)
        self.description = QtWidgets.QPlainTextEdit()
        self.description.setObjectName("description")
        self.description.setPlaceholderText("what this preset is for (saved with it)")
        lines = self.description.fontMetrics().lineSpacing()
        self.description.setFixedHeight(2 * lines + 12)
        self.description.setToolTip(f"saved with the preset (at most {DESCRIPTION_LIMIT} characters)")
        self.description.setTabChangesFocus(True)
        self.description.textChanged.connect(self._limit_description)
        tint(self.description, DIM)
        self.applied_texts: tuple = ()                # what show_spec last put in the editors (set below)
        self.circuit = CodeEdit("y = gain*x + dc", 6)
        self.target = CodeEdit("ground truth (blank: the same circuit with the hidden values)", 2)
        self.params = CodeEdit("gain = 0 : -1 : 2", 3)
        self.banks = QtWidgets.QLineEdit()
        self.banks.setPlaceholderText("LACTOSE bank boundaries, e.g. -60, -30, -12, 0 (blank: none)")
        self.condition = QtWidgets.QComboBox()
        self.condition.addItems(["level", "input", "note", "velocity"])
        self.bank_mode = QtWidgets.QComboBox()
        self.bank_mode.addItems(["separated", "exact"])
        self.previous_banks = None
        self.error = QtWidgets.QLabel()
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        self.error.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft)
        # a fixed place for messages: one appearing never pushes the editors or the meters around
        self.error.setFixedHeight(self.error.fontMetrics().lineSpacing() * ERROR_LINES + 4)
        tint(self.error, ERROR)
        self.apply = QtWidgets.QPushButton("Apply")
        self.apply.setToolTip("compile and swap the circuit in while audio keeps playing (Ctrl+Return)")
        self.apply.clicked.connect(self.request_apply)
        QtGui.QShortcut(QtGui.QKeySequence("Ctrl+Return"), self, self.request_apply)
        self.progress = QtWidgets.QProgressBar()       # a thin bar; its stage is said in words below
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(8)
        self.progress.hide()
        self.stage = QtWidgets.QLabel()
        self.stage.setObjectName("stage")
        self.stage.setWordWrap(True)
        tint(self.stage, DIM)
        self.stage.hide()
        form = QtWidgets.QVBoxLayout(self)
        form.addWidget(self.factory)
        form.addWidget(self.description)
        for title, w in (("learnable circuit", self.circuit), ("ground truth", self.target),
                         ("parameters  (name = init : min : max [log])", self.params)):
            lab = QtWidgets.QLabel(title)
            tint(lab, DIM)
            form.addWidget(lab)
            form.addWidget(w)
        bank_row = QtWidgets.QHBoxLayout()
        bank_row.addWidget(self.banks, 1)
        bank_row.addWidget(self.condition)
        bank_row.addWidget(self.bank_mode)
        form.addLayout(bank_row)
        form.addWidget(self.error)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.apply)
        form.addLayout(row)
        form.addWidget(self.stage)
        self._timer = QtCore.QTimer(self, singleShot=True, interval=250)
        self._timer.timeout.connect(self.check)
        for w in (self.circuit, self.target, self.params, self.banks):
            w.textChanged.connect(self._timer.start)
        for w in (self.condition, self.bank_mode):
            w.currentTextChanged.connect(self._timer.start)
        self.checked = None
        self.applicable = True                        # the last check found nothing but notes
        self.applied_texts = self.texts()             # empty editors hold no edits

    def _factory_activated(self, index: int):
        self.factory.setCurrentIndex(0)               # the box names what is open, not what was picked
        if index > 0:
            self.factory_chosen.emit(self.factory.itemText(index))

    def show_name(self, name: str, modified: bool):
        self.factory.setItemText(0, name + (" •" if modified else ""))
        self.factory.setCurrentIndex(0)

    def _limit_description(self):
        text = self.description.toPlainText()
        if len(text) > DESCRIPTION_LIMIT:        # cut here rather than fail every save and autosave
            cursor = self.description.textCursor()
            position = min(cursor.position(), DESCRIPTION_LIMIT)
            self.description.setPlainText(text[:DESCRIPTION_LIMIT])
            cursor = self.description.textCursor()
            cursor.setPosition(position)
            self.description.setTextCursor(cursor)

    def show_description(self, text: str):
        self.description.blockSignals(True)
        self.description.setPlainText(text)
        self.description.blockSignals(False)

    def texts(self) -> tuple:
        """Everything the editors hold that Apply would use."""
        return (self.circuit.toPlainText(), self.target.toPlainText(), self.params.toPlainText(),
                self.banks.text(), self.condition.currentText(), self.bank_mode.currentText())

    def has_unapplied_edits(self) -> bool:
        return self.texts() != self.applied_texts

    def show_spec(self, spec, declarations: str):
        for w, text in ((self.circuit, spec.circuit), (self.target, spec.target or ""),
                        (self.params, declarations)):
            w.blockSignals(True)
            w.setPlainText(text)
            w.blockSignals(False)
        b = spec.banks
        self.previous_banks = b
        for w in (self.banks, self.condition, self.bank_mode):
            w.blockSignals(True)
        self.banks.setText("" if b is None else ", ".join(f"{v:g}" for v in b.boundaries))
        if b is not None:
            if self.condition.findText(b.condition) < 0:
                self.condition.addItem(b.condition)      # a signal of the circuit
            self.condition.setCurrentText(b.condition)
            self.bank_mode.setCurrentText(b.mode)
        for w in (self.banks, self.condition, self.bank_mode):
            w.blockSignals(False)
        self.applied_texts = self.texts()
        self.check()

    def check(self):
        """Check the texts now; mark the first problem of each editor; returns the Checked."""
        self._timer.stop()
        banks, bank_problem = parse_banks(self.banks.text(), self.condition.currentText(),
                                          self.bank_mode.currentText(), self.previous_banks)
        c = check_edit(self.circuit.toPlainText(), self.target.toPlainText(),
                       self.params.toPlainText(), self._hidden(), self._settings(), self._sample_rate(),
                       banks, bank_problem)
        self.checked = c
        editors = {"circuit": self.circuit, "target": self.target, "params": self.params}
        bad_banks = any(p.where == "banks" for p in c.problems)
        self.banks.setStyleSheet(f"border: 1px solid {UNDERLINE};" if bad_banks else "")
        first: dict[str, Problem] = {}
        for p in c.problems:
            first.setdefault(p.where, p)
        for where, editor in editors.items():
            p = first.get(where)
            editor.mark(None if p is None else p.line, None if p is None else p.col)
        shown = c.problems[:ERROR_LINES]
        more = len(c.problems) - len(shown)
        self.error.setText("\n".join(str(p) for p in shown) + (f" (+{more} more)" if more else ""))
        self.error.setToolTip("\n".join(str(p) for p in c.problems))
        # new names are notes (Apply declares them), not errors: said dimly, and Apply stays on
        only_notes = all(p.kind == UNDECLARED for p in c.problems)
        tint(self.error, DIM if only_notes else ERROR)
        self.applicable = only_notes
        self.apply.setEnabled(only_notes and self.progress.isHidden())     # (hidden: not compiling)
        self.edited.emit()
        return c

    def request_apply(self):
        c = self.check()
        if c.undeclared:
            # declare the new names with a default range and apply what that gives
            text = self.params.toPlainText().rstrip("\n")
            add = "\n".join(NEW_DECLARATION.format(name=n) for n in c.undeclared)
            self.params.setPlainText((text + "\n" if text else "") + add)
            c = self.check()
        if c.spec is not None:
            self.apply_requested.emit(c.spec)

    def set_busy(self, stage: str | None, fraction: float = 0.0):
        if stage is None:
            self.progress.hide()
            self.stage.hide()
            self.apply.setEnabled(self.applicable)
            return
        self.progress.show()
        self.progress.setValue(int(100 * fraction))
        self.stage.setText(stage)
        self.stage.show()
        self.apply.setEnabled(False)
