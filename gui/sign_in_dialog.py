"""File ▸ Sign in…: a user name and a password, checked by the result store itself.

:class:`SignInDialog` signs in on the store when it is accepted (:meth:`ResultStore.sign_in`,
which audits both the sign-in and a refused one); a refusal keeps the dialog open with the
store's one message ("user name or password not accepted", never which of the two was wrong)
and an empty password field. :func:`ask_sign_in` is what the window calls; tests drive the
dialog itself (set the fields, call :meth:`~SignInDialog.accept`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from engine.core.errors import AllSightError
from gui import theme
from gui.theme import Tone

if TYPE_CHECKING:
    from engine.core.identity import Identity
    from engine.store.results import ResultStore


class SignInDialog(QDialog):
    """Sign in on ``store``; :attr:`identity` is the account signed in once accepted."""

    def __init__(self, store: ResultStore, parent: QWidget | None = None, *, username: str = ""):
        super().__init__(parent)
        self.store = store
        self.identity: Identity | None = None
        self.setWindowTitle("Sign in to ALLSight")
        intro = QLabel(f"This lab's result database ({store.path.name}) records every change under a "
                       "named ALLSight account. Sign in with yours.", self)
        intro.setWordWrap(True)
        self.user_edit = QLineEdit(username, self)
        self.user_edit.setPlaceholderText("user name")
        self.password_edit = QLineEdit(self)
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.error_label = QLabel(self)
        theme.style(self.error_label, Tone.ERROR)
        self.error_label.hide()
        form = QFormLayout()
        form.addRow("User name", self.user_edit)
        form.addRow("Password", self.password_edit)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel,
                                        self)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Sign in")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)
        (self.password_edit if username else self.user_edit).setFocus()

    def accept(self) -> None:
        """Sign in; on a refusal say so and stay open (the password field emptied)."""
        username = self.user_edit.text().strip()
        if not username or not self.password_edit.text():
            self._refused("Enter your user name and password.")
            return
        try:
            self.identity = self.store.sign_in(username, self.password_edit.text())
        except AllSightError as exc:  # AuthenticationError: the store's one message
            self._refused(str(exc))
            return
        finally:
            self.password_edit.clear()  # never kept in the widget longer than needed
        super().accept()

    def _refused(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()
        self.password_edit.setFocus()


def ask_sign_in(parent: QWidget | None, store: ResultStore, username: str = "") -> Identity | None:
    """The signed-in account, or None when the person cancelled."""
    dialog = SignInDialog(store, parent, username=username)
    try:
        return dialog.identity if dialog.exec() else None
    finally:
        dialog.deleteLater()


__all__ = ["SignInDialog", "ask_sign_in"]
