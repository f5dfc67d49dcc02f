"""The sign-off: a dialog that says what is signed, by whom, and (once the lab requires accounts)
asks for the password again, because a sign-off is a signature, not a click.

:class:`SignOffDialog` shows the statement (:meth:`gui.workbench.Workbench.sign_off_statement`,
the words the record keeps) and "Signed as <name>"; when accepted it calls ``sign(password)``
(the flow's call into the store). A password the store does not accept keeps the dialog open
with the refusal and an empty password field: nothing is signed. Any other refusal (a flagged
image left, the independent-reviewer rule, a role that may not) closes it with
:attr:`~SignOffDialog.failure` set, for the flow to show. Tests drive the dialog itself (set the
password, call :meth:`~SignOffDialog.accept`).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from engine.core.errors import AllSightError
from engine.core.identity import AuthenticationError
from gui import theme
from gui.theme import Tone


class SignOffDialog(QDialog):
    def __init__(self, parent: QWidget | None, *, sample_id: str, statement: str, signer: str,
                 needs_password: bool, sign: Callable[[str | None], None]):
        super().__init__(parent)
        self._sign = sign
        self.needs_password = needs_password
        self.statement = statement
        #: Set when the store refused for a reason other than the password (the dialog is closed).
        self.failure: AllSightError | None = None
        self.setWindowTitle(f"Sign off sample {sample_id}")
        self.statement_label = QLabel(statement, self)
        self.statement_label.setWordWrap(True)
        font = self.statement_label.font()
        font.setBold(True)
        self.statement_label.setFont(font)
        self.signer_label = QLabel(f"Signed as {signer}.", self)
        note = QLabel("The statement is kept with the sample and in its audit trail; the sample cannot be "
                      "changed until it is reopened.", self)
        note.setWordWrap(True)
        theme.style(note, Tone.MUTED)
        self.password_edit = QLineEdit(self)
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.error_label = QLabel(self)
        theme.style(self.error_label, Tone.ERROR)
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel,
                                        self)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Sign off")
        # Enter signs only once a password was typed; without one, Enter is the safe answer.
        default = QDialogButtonBox.StandardButton.Ok if needs_password else QDialogButtonBox.StandardButton.Cancel
        self.buttons.button(default).setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.statement_label)
        layout.addWidget(self.signer_label)
        if needs_password:
            form = QFormLayout()
            form.addRow("Your password", self.password_edit)
            layout.addLayout(form)
            self.password_edit.setFocus()
        else:
            self.password_edit.hide()
        layout.addWidget(note)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

    def accept(self) -> None:
        """Sign; a refused password keeps the dialog open, any other refusal closes it."""
        password = self.password_edit.text() if self.needs_password else None
        self.password_edit.clear()
        if self.needs_password and not password:
            self._say("Enter your password to sign.")
            return
        try:
            self._sign(password)
        except AuthenticationError as exc:
            self._say(str(exc))
            return
        except AllSightError as exc:
            self.failure = exc
            self.reject()
            return
        super().accept()

    def _say(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()
        self.password_edit.setFocus()


__all__ = ["SignOffDialog"]
