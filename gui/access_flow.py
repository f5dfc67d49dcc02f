"""Who the window acts as, and what that person may do: File ▸ Sign in… / Sign out, the status
bar's "Signed in: …", File ▸ Change password…, the actions a role may not take (disabled, the tooltip saying why), the
message when an action is refused, and Tools ▸ Accounts….

:attr:`AccessFlow.identity` is the window's one identity (``MainWindow.identity``): the OS login
(:func:`engine.core.identity.os_identity`) while the result database does not require accounts;
once it does, the ALLSight account signed in on the store, or ``None`` until someone signs in.
Every review, sign-off, reopen, ID edit, registration, classification, export and model change
is recorded under ``identity.user``. The rules are Qt-free (:func:`gui.workbench.refusal`) and
the store applies them again itself: a refusal that reaches it comes back as
:class:`~engine.core.identity.PermissionDenied`, shown through :func:`gui.errors.show_exception`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from engine.core.errors import AllSightError
from engine.core.identity import Permission
from engine.core.jobs import JobState
from gui import errors as gui_errors
from gui.workbench import SIGN_IN_FIRST, identity_status, refusal, starting_identity

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMainWindow

    from engine.core.identity import Identity
    from engine.store.results import ResultStore
    from gui.batch import BatchQueue
    from gui.results import ResultsPanel
    from gui.samples import SamplesPanel


class AccessFlow:
    """The identity of ``window`` (the :class:`gui.main_window.MainWindow`, typed as its Qt base
    as in :mod:`gui.window_layout`: its actions, ``identity_label``, ``show_message`` and
    ``update_actions``)."""

    def __init__(self, window: QMainWindow, *, store: ResultStore | None, batch: BatchQueue,
                 samples_panel: SamplesPanel, results_panel: ResultsPanel):
        self.window = window
        self.store = store
        self.batch = batch
        self.samples_panel = samples_panel
        self.results_panel = results_panel
        self.identity: Identity | None = starting_identity(store)
        self._tips: dict[object, str] = {}
        samples_panel.default_operator = self.identity.name if self.identity is not None else ""
        results_panel.refusal = lambda action: self.refusal(
            Permission.SIGN_OFF if action == "sign_off" else Permission.REOPEN, quiet=True)

    # ------------------------------------------------------------------ rules
    @property
    def user(self) -> str:
        """The name records carry ("" when nobody is signed in: the store then refuses)."""
        return self.identity.user if self.identity is not None else ""

    def refusal(self, permission: Permission, *, quiet: bool = False) -> str:
        """Why the identity may not take an action ("" when it may). ``quiet``: for disabling
        (nobody signed in does not disable: the action then says "Sign in first")."""
        if quiet and self.identity is None:
            return ""
        return refusal(self.identity, permission)

    def allowed(self, permission: Permission, what: str) -> bool:
        """True when the identity may ``what``; else one clear message and False."""
        reason = self.refusal(permission)
        if not reason:
            return True
        if self.identity is None:
            gui_errors.show_refusal(self.window, f"{SIGN_IN_FIRST} to {what}: this lab's result database takes "
                                                 "changes only from a signed-in ALLSight account.")
        else:
            gui_errors.show_refusal(self.window, f"Cannot {what}. {reason}.")
        return False

    def update_actions(self) -> None:
        """Disable what the identity may not do (the tooltip says why); called by the window's
        ``update_actions`` after it has set the actions for the samples."""
        w = self.window
        store_ok = self.store is not None
        w.act_sign_in.setEnabled(store_ok)
        w.act_sign_out.setEnabled(self.identity is not None and self.identity.via == "password")
        w.act_change_password.setEnabled(self.identity is not None and self.identity.via == "password")
        refusals = ((w.act_sign_off, refusal(self.identity, Permission.SIGN_OFF) if self.identity else ""),
                    (w.act_reopen, refusal(self.identity, Permission.REOPEN) if self.identity else ""),
                    (w.act_export, refusal(self.identity, Permission.EXPORT) if self.identity else ""),
                    (w.act_accounts, refusal(self.identity, Permission.MANAGE_ACCOUNTS) if store_ok else
                     "The result database cannot be used"))
        for act, reason in refusals:
            self._tips.setdefault(act, act.toolTip())
            act.setToolTip(reason or self._tips[act])
            if reason:
                act.setEnabled(False)
        if store_ok:
            w.act_accounts.setEnabled(not refusals[-1][1])
        self.results_panel.refresh_permissions()

    # ------------------------------------------------------------------ signing in and out
    def set_identity(self, identity: Identity | None) -> None:
        self.identity = identity
        self.samples_panel.default_operator = identity.name if identity is not None else ""
        self.window.identity_label.setText(identity_status(identity))
        self.window.identity_label.setToolTip("Every review, sign-off and change is recorded under this identity"
                                              if identity is not None else "File ▸ Sign in…")
        self.window.update_actions()

    def _busy(self, doing: str) -> bool:
        if not any(j.state in (JobState.QUEUED, JobState.RUNNING) for j in self.batch.jobs):
            return False
        self.window.show_message(f"Samples are being classified under {self.user or 'the current identity'}: "
                                 f"wait for them to finish (or stop them) before {doing}.", 10000)
        return True

    def sign_in(self) -> bool:
        """File ▸ Sign in…: the sign-in dialog; Cancel leaves whoever acted before."""
        from gui import sign_in_dialog

        if self.store is None:
            self.window.show_message("The result history cannot be used, so there is nothing to sign in to.")
            return False
        if self._busy("signing in"):
            return False
        previous = self.identity.user if self.identity is not None and self.identity.via == "password" else ""
        identity = sign_in_dialog.ask_sign_in(self.window, self.store, previous)
        if identity is None:
            self.window.show_message("Not signed in." if self.identity is None else
                                     f"Still acting as {self.identity.name}.", 6000)
            return False
        self.set_identity(identity)
        self.window.show_message(f"Signed in as {identity.name} ({identity.role.value}).", 6000)
        return True

    def sign_in_if_needed(self) -> None:
        """At start-up: the sign-in dialog when the lab requires accounts and nobody is signed in."""
        if self.identity is None and self.store is not None:
            self.sign_in()

    def sign_out(self) -> bool:
        if self.store is None or self.identity is None or self.identity.via != "password":
            return False
        if self._busy("signing out"):
            return False
        name = self.identity.name
        self.store.sign_out()
        self.set_identity(starting_identity(self.store))
        self.window.show_message(f"{name} signed out.", 6000)
        return True

    def change_password(self) -> bool:
        """File ▸ Change password…: the signed-in account's own password (the current one typed
        first; the store checks it and audits the change)."""
        from engine.core.identity import AuthenticationError
        from gui import accounts_dialog

        me = self.identity
        if self.store is None or me is None or me.via != "password":
            return False
        while True:
            answer = accounts_dialog.ask_own_password(self.window, me.user)
            if answer is None:
                return False
            current, new = answer
            try:
                self.store.accounts.set_password(me.user, new, actor=me.user, old_password=current)
            except AuthenticationError:
                gui_errors.show_refusal(self.window, "Your current password was not accepted; the password "
                                                     "is unchanged.")
                continue
            except AllSightError as exc:
                gui_errors.show_exception(self.window, "Could not change the password", exc)
                return False
            self.window.show_message(f"Password changed for {me.user}.", 6000)
            return True

    # ------------------------------------------------------------------ accounts
    def open_accounts(self) -> bool:
        """Tools ▸ Accounts… (administrators); afterwards the identity follows what changed."""
        from gui import accounts_dialog

        if self.store is None or not self.allowed(Permission.MANAGE_ACCOUNTS, "manage accounts"):
            return False
        accounts_dialog.manage_accounts(self.window, self.store, self.user)
        self.after_accounts_changed()
        return True

    def after_accounts_changed(self) -> None:
        """The policy or the signed-in account may have changed: act as what the store says now."""
        if self.store is None:
            return
        me = self.identity
        if me is None or me.via != "password":
            new = starting_identity(self.store)
            if new != me:
                self.set_identity(new)
                if new is None:
                    self.window.show_message("Accounts are now required on this database: sign in "
                                             "(File ▸ Sign in…).", 15000)
            return
        account = self.store.accounts.get(me.user)
        if account is None or not account.active:
            self.store.sign_out()
            self.set_identity(starting_identity(self.store))
        elif (account.role, account.display_name) != (me.role, me.display_name):
            self.set_identity(dataclasses.replace(me, role=account.role, display_name=account.display_name))


__all__ = ["AccessFlow"]
