"""Tools ▸ Accounts… (administrators): the ALLSight accounts of this result database and the lab's
policy.

Everything goes through ``store.accounts`` (:class:`engine.store.access.Accounts`), which checks
that the person may manage accounts and audits every change under ``actor`` (the window's
identity): adding an account, changing its role or name, deactivating or reactivating it,
resetting its password, and the two policy switches "Require ALLSight accounts on this
database" and "Require a reviewer other than the person who classified". Requiring accounts
before an active administrator account exists is refused by the store; the dialog offers to
create one first.

The small forms (:class:`AccountForm`: a new account or a new password, typed twice) open
through :func:`ask_account` and :func:`ask_password`, which tests replace or drive (set the
fields, call :meth:`AccountForm.accept`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.core.errors import AllSightError
from engine.core.identity import ROLE_TITLES, Role
from engine.store.accounts import MIN_PASSWORD_CHARS
from gui import errors as gui_errors
from gui import theme
from gui.theme import Tone

if TYPE_CHECKING:
    from engine.store.accounts import Account
    from engine.store.results import ResultStore


@dataclass(frozen=True)
class NewAccount:
    username: str
    display_name: str
    role: Role
    password: str


class AccountForm(QDialog):
    """A new account (user, name, role, password twice) or, with ``username`` given, a new
    password for that account (twice); with ``own`` as well, the person's own new password, which
    needs their current one."""

    def __init__(self, parent: QWidget | None = None, *, username: str = "", role: Role = Role.TECHNICIAN,
                 own: bool = False):
        super().__init__(parent)
        self.new_account = not username
        self.own = own and not self.new_account
        self.setWindowTitle("Add an account" if self.new_account else
                            "Change your password" if self.own else f"New password for {username}")
        self.current_edit = QLineEdit(self)
        self.current_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.user_edit = QLineEdit(username, self)
        self.name_edit = QLineEdit(self)
        self.name_edit.setPlaceholderText("as people read it, e.g. Dr. A. Smith")
        self.role_combo = QComboBox(self)
        for r in Role:
            self.role_combo.addItem(ROLE_TITLES[r], r)
        self.role_combo.setCurrentIndex(self.role_combo.findData(role))
        self.password_edit = QLineEdit(self)
        self.repeat_edit = QLineEdit(self)
        for edit in (self.password_edit, self.repeat_edit):
            edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.password_edit.setPlaceholderText(f"at least {MIN_PASSWORD_CHARS} characters")
        self.error_label = QLabel(self)
        theme.style(self.error_label, Tone.ERROR)
        self.error_label.hide()
        form = QFormLayout()
        if self.new_account:
            form.addRow("User name", self.user_edit)
            form.addRow("Name", self.name_edit)
            form.addRow("Role", self.role_combo)
        else:  # children left out of the form would still be drawn, in the top-left corner
            for unused in (self.user_edit, self.name_edit, self.role_combo):
                unused.hide()
        if self.own:
            form.addRow("Current password", self.current_edit)
        else:
            self.current_edit.hide()
        form.addRow("New password" if self.own else "Password", self.password_edit)
        form.addRow("Password again", self.repeat_edit)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)

    def problem(self) -> str:
        if self.new_account and not self.user_edit.text().strip():
            return "Enter a user name."
        if self.own and not self.current_edit.text():
            return "Enter your current password."
        if len(self.password_edit.text()) < MIN_PASSWORD_CHARS:
            return f"A password needs at least {MIN_PASSWORD_CHARS} characters."
        if self.password_edit.text() != self.repeat_edit.text():
            return "The two passwords differ."
        return ""

    def accept(self) -> None:
        problem = self.problem()
        if problem:
            self.error_label.setText(problem)
            self.error_label.show()
            return
        super().accept()

    def values(self) -> NewAccount:
        return NewAccount(self.user_edit.text().strip(), self.name_edit.text().strip(),
                          Role(self.role_combo.currentData()), self.password_edit.text())


def _run(form: AccountForm) -> NewAccount | None:
    try:
        return form.values() if form.exec() else None
    finally:
        form.deleteLater()


def ask_account(parent: QWidget | None, role: Role = Role.TECHNICIAN) -> NewAccount | None:
    """A new account's details, or None when cancelled."""
    return _run(AccountForm(parent, role=role))


def ask_password(parent: QWidget | None, username: str) -> str | None:
    """A new password for ``username``, or None when cancelled."""
    values = _run(AccountForm(parent, username=username))
    return None if values is None else values.password


def ask_own_password(parent: QWidget | None, username: str) -> tuple[str, str] | None:
    """The person's current and new password, or None when cancelled."""
    form = AccountForm(parent, username=username, own=True)
    try:
        return (form.current_edit.text(), form.password_edit.text()) if form.exec() else None
    finally:
        form.deleteLater()


COLUMNS = ("User", "Name", "Role", "Active")


class AccountsDialog(QDialog):
    """The accounts and the policy of ``store``, changed under ``actor``."""

    def __init__(self, store: ResultStore, actor: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        self.actor = actor
        self.accounts: list[Account] = []
        self.setWindowTitle("ALLSight accounts")
        self.resize(720, 440)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().hide()  # row numbers mean nothing here
        self.table.itemSelectionChanged.connect(self._update_buttons)

        self.add_button = QPushButton("Add…", self)
        self.add_button.clicked.connect(lambda: self.add_account())
        self.role_combo = QComboBox(self)
        for r in Role:
            self.role_combo.addItem(r.value.capitalize(), r)
        self.role_button = QPushButton("Set role", self)
        self.role_button.clicked.connect(self.set_role)
        self.rename_button = QPushButton("Rename…", self)
        self.rename_button.clicked.connect(self.rename)
        self.active_button = QPushButton("Deactivate", self)
        self.active_button.clicked.connect(self.toggle_active)
        self.password_button = QPushButton("Reset password…", self)
        self.password_button.clicked.connect(self.reset_password)
        row = QHBoxLayout()
        for widget in (self.add_button, self.role_combo, self.role_button, self.rename_button, self.active_button,
                       self.password_button):
            row.addWidget(widget)
        row.addStretch(1)

        self.require_check = QCheckBox("Require ALLSight accounts on this database", self)
        self.require_check.setToolTip("Changes are then taken only from a signed-in account, within its role")
        self.require_check.clicked.connect(self.set_accounts_required)
        self.independent_check = QCheckBox("Require a reviewer other than the person who classified", self)
        self.independent_check.clicked.connect(
            lambda checked: self._set_policy(independent_reviewer_required=checked))
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addLayout(row)
        layout.addWidget(self.require_check)
        layout.addWidget(self.independent_check)
        layout.addWidget(self.status)
        layout.addWidget(close)
        self.reload()

    # ------------------------------------------------------------------ shown
    def reload(self) -> None:
        selected = self.selected()
        self.accounts = self.store.accounts.list()
        self.table.setRowCount(len(self.accounts))
        for i, a in enumerate(self.accounts):
            for j, text in enumerate((a.username, a.display_name, a.role.value, "yes" if a.active else "no")):
                self.table.setItem(i, j, QTableWidgetItem(text))
        if selected is not None and selected.username in [a.username for a in self.accounts]:
            self.select(selected.username)
        policy = self.store.accounts.policy
        self.require_check.setChecked(policy.accounts_required)
        self.independent_check.setChecked(policy.independent_reviewer_required)
        self._update_buttons()

    def selected(self) -> Account | None:
        rows = {i.row() for i in self.table.selectedIndexes()}
        return self.accounts[min(rows)] if rows and min(rows) < len(self.accounts) else None

    def select(self, username: str) -> None:
        names = [a.username for a in self.accounts]
        self.table.selectRow(names.index(username))

    def _update_buttons(self) -> None:
        account = self.selected()
        for widget in (self.role_combo, self.role_button, self.rename_button, self.active_button,
                       self.password_button):
            widget.setEnabled(account is not None)
        if account is not None:
            self.active_button.setText("Deactivate" if account.active else "Reactivate")
            self.role_combo.setCurrentIndex(self.role_combo.findData(account.role))

    def _do(self, what: str, call) -> bool:
        """Run one change of ``store.accounts``; a refusal is shown, the list read again."""
        try:
            call()
        except AllSightError as exc:
            gui_errors.show_exception(self, f"Could not {what}", exc)
            return False
        finally:
            self.reload()
        return True

    # ------------------------------------------------------------------ changes
    def add_account(self, role: Role = Role.TECHNICIAN) -> bool:
        new = ask_account(self, role)
        if new is None:
            return False
        created: list[Account] = []
        if not self._do(f"add the account {new.username}", lambda: created.append(self.store.accounts.create(
                new.username, new.password, new.role, new.display_name, actor=self.actor))):
            return False
        self.select(created[0].username)
        self.status.setText(f"Account {created[0].username} added ({created[0].role.value}).")
        return True

    def _update(self, what: str, **changes) -> bool:
        """Change the selected account (``what`` it is, for a refusal's message)."""
        account = self.selected()
        return account is not None and self._do(f"{what} {account.username}", lambda: self.store.accounts.update(
            account.username, actor=self.actor, **changes))

    def set_role(self) -> bool:
        return self._update("change the role of", role=Role(self.role_combo.currentData()))

    def rename(self) -> bool:
        from gui import dialogs

        account = self.selected()
        name = None if account is None else dialogs.ask_text(
            self, "Rename", f"The name people read for {account.username}:", account.display_name)
        return name is not None and self._update("rename", display_name=name)

    def toggle_active(self) -> bool:
        account = self.selected()
        return account is not None and self._update("deactivate" if account.active else "reactivate",
                                                    active=not account.active)

    def reset_password(self) -> bool:
        account = self.selected()
        if account is None:
            return False
        password = ask_password(self, account.username)
        if password is None:
            return False
        done = self._do(f"set {account.username}'s password", lambda: self.store.accounts.set_password(
            account.username, password, actor=self.actor))
        if done:
            self.status.setText(f"New password set for {account.username}.")
        return done

    # ------------------------------------------------------------------ policy
    def set_accounts_required(self, checked: bool) -> bool:
        if checked and not any(a.active and a.role is Role.ADMINISTRATOR for a in self.accounts) \
                and not self._first_administrator():
            self.reload()
            return False
        done = self._set_policy(accounts_required=checked)
        if done and checked:
            self.status.setText("Accounts are now required: from now on, changes are taken only from a signed-in "
                                "account (File ▸ Sign in…).")
        return done

    def _first_administrator(self) -> bool:
        """Offer to create the administrator account that requiring accounts needs first."""
        from gui import dialogs

        return dialogs.confirm(self, "No administrator account",
                               "Accounts can be required only once an active administrator account exists "
                               "(otherwise nobody could manage the accounts afterwards). Create one now?",
                               "Create administrator…", "Cancel") and self.add_account(Role.ADMINISTRATOR)

    def _set_policy(self, **changes: bool) -> bool:
        return self._do("change the lab policy", lambda: self.store.accounts.set_policy(actor=self.actor, **changes))


def manage_accounts(parent: QWidget | None, store: ResultStore, actor: str) -> None:
    dialog = AccountsDialog(store, actor, parent)
    try:
        dialog.exec()
    finally:
        dialog.deleteLater()


__all__ = ["AccountForm", "AccountsDialog", "NewAccount", "ask_account", "ask_password", "manage_accounts"]
