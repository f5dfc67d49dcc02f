"""Review, sign-off and reopening of the sample the Results tab shows, as the person meets them:
the sign-off dialog that says what is signed and by whom (and asks for the password again when
the lab requires accounts, :mod:`gui.sign_off_dialog`), the reason for reopening; then the
:class:`gui.workbench.Workbench` call and what the window shows of its outcome. Everything is
recorded under the window's identity (:mod:`gui.access_flow`), never a name typed into a form.
The rules (what blocks a sign-off, who may sign) are the engine's and the workbench's; this
module only asks and shows.

:class:`SignOffFlow` is driven by the Results tab's ``review_requested``, ``withdraw_requested``,
``sign_off_requested`` and ``reopen_requested`` and by the Sample menu (connected in
:class:`gui.main_window.MainWindow` and :mod:`gui.window_layout`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.core.errors import AllSightError
from engine.core.identity import Permission
from gui import errors as gui_errors
from gui.theme import Tone

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMainWindow

    from engine.store.results import ResultStore
    from gui.access_flow import AccessFlow
    from gui.samples import SamplesPanel
    from gui.shown_results import ShownResults
    from gui.workbench import Workbench


class SignOffFlow:
    """Reviews, sign-off and reopening of ``results.sample``.

    ``window`` is the :class:`gui.main_window.MainWindow` (typed as its Qt base, as in
    :mod:`gui.window_layout`): the parent of the dialogs, its ``show_message`` and
    ``update_actions``, and its ``settings`` (replaced when they change); ``access`` says who
    acts and what they may do."""

    def __init__(self, window: QMainWindow, *, store: ResultStore | None, workbench: Workbench,
                 samples_panel: SamplesPanel, results: ShownResults, access: AccessFlow):
        self.window = window
        self.store = store
        self.workbench = workbench
        self.samples_panel = samples_panel
        self.results = results
        self.access = access

    def review(self, path: str, final_class: str | None) -> bool:
        """Record the reviewer's class for one image of the results sample (None: withdraw the
        image's review)."""
        from engine.store.results import ReviewConflictError, SignOffError

        sample = self.results.sample
        if sample is None or sample.store_id is None or self.store is None:
            return False
        if not self.access.allowed(Permission.REVIEW, "review images"):
            return False
        reviewer = self.access.user
        shown = self.results.panel.model.row_data(self.results.panel.model.row_of(path))
        try:
            via = "label_next" if self.results.panel.label_next_shown() else ""
            when = self.workbench.review(sample, path, final_class, reviewer, via,
                                         seen=None if shown is None else shown.reviewed_at)
        except ReviewConflictError as exc:  # another workstation's review: show it, keep it
            self.results.panel.set_review(path, exc.current_class, exc.changed_by if exc.current_class else None,
                                          exc.changed_at if exc.current_class else None)
            self.window.show_message(str(exc))
            return False
        except SignOffError as exc:
            self.window.show_message(str(exc))
            return False
        except AllSightError as exc:
            gui_errors.show_exception(self.window, "The review could not be saved", exc)
            return False
        rp = self.results.panel
        if final_class is None:
            rp.set_review(path, None, None)
        else:
            rp.set_review(path, final_class, reviewer, when)
        self.results.update_note(sample)
        rp.after_review()
        return True

    def sign_off(self) -> bool:
        """The sign-off dialog for the results sample: the statement, who signs, the password
        again when accounts are required; True once the store has the sign-off."""
        from gui.sign_off_dialog import SignOffDialog

        w = self.window
        sample = self.results.sample
        rp = self.results.panel
        if sample is None or sample.store_id is None or self.store is None:
            w.show_message("Classify the sample before signing it off.")
            return False
        rp.flush()
        blockers = rp.sign_off_blockers()
        if blockers:  # said before asking anything
            w.show_message(f"Cannot sign off yet: {blockers}")
            return False
        if not self.access.allowed(Permission.SIGN_OFF, "sign samples off"):
            return False
        identity = self.access.identity
        if identity is None:  # allowed() has said so already
            return False
        # What is signed is said in words, and the words are what the record keeps.
        try:
            statement = self.workbench.sign_off_statement(sample)
        except AllSightError as exc:
            gui_errors.show_exception(w, "The sign-off statement could not be read", exc)
            return False
        dialog = SignOffDialog(
            w, sample_id=sample.sample_id, statement=statement, signer=identity.name,
            needs_password=self.store.accounts_required,
            sign=lambda password: self.workbench.sign_off(
                sample, identity.user, statement, require_independent=w.settings.require_independent_reviewer,
                password=password))
        try:
            signed = bool(dialog.exec())
            failure = dialog.failure
        finally:
            dialog.deleteLater()
        if failure is not None:
            return self._sign_off_refused(failure)
        if not signed:
            w.show_message("Not signed off.")
            return False
        rp.set_sign_state(sample.signed_off_by, sample.signed_off_at)
        self.samples_panel.refresh_sample(sample)
        w.update_actions()
        w.show_message(f"Sample {sample.sample_id} signed off by {identity.name}.")
        return True

    def _sign_off_refused(self, exc: AllSightError) -> bool:
        from engine.store.results import SignOffError

        if isinstance(exc, SignOffError):  # the sample's state or the lab's rule: said where it shows
            self.window.show_message(str(exc), 12000)
            self.results.panel.show_sign_state(str(exc), Tone.WARNING)
        else:
            gui_errors.show_exception(self.window, "Not signed off", exc)
        return False

    def reopen(self) -> bool:
        from gui import dialogs

        w = self.window
        sample = self.results.sample
        if sample is None or not sample.signed_off or self.store is None or sample.store_id is None:
            return False
        if not self.access.allowed(Permission.REOPEN, "reopen samples"):
            return False
        reason = dialogs.ask_text(w, "Reopen sample", f"Why reopen sample {sample.sample_id}? (kept in the audit log)")
        if not reason:
            w.show_message("Not reopened: a reason is required.")
            return False
        try:
            self.workbench.reopen(sample, self.access.user, reason)
        except AllSightError as exc:
            gui_errors.show_exception(w, "The sample could not be reopened", exc)
            return False
        self.results.panel.set_sign_state(None, None)
        self.samples_panel.refresh_sample(sample)
        self.results.update_note(sample)
        w.update_actions()
        w.show_message(f"Sample {sample.sample_id} reopened.")
        return True
