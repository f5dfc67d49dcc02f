"""Review, sign-off and reopening of the sample the Results tab shows, as the person meets them:
who is reviewing (the operator name, asked once if there is none), the confirmation that says
what is signed, the reason for reopening; then the :class:`gui.workbench.Workbench` call and
what the window shows of its outcome. The rules (what blocks a sign-off, who may sign) are the
engine's and the workbench's; this module only asks and shows.

:class:`SignOffFlow` is driven by the Results tab's ``review_requested``, ``withdraw_requested``,
``sign_off_requested`` and ``reopen_requested`` and by the Sample menu (connected in
:class:`gui.main_window.MainWindow` and :mod:`gui.window_layout`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.core.errors import AllSightError
from gui import errors as gui_errors

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMainWindow

    from engine.store.results import ResultStore
    from gui.samples import SamplesPanel
    from gui.shown_results import ShownResults
    from gui.workbench import Workbench


class SignOffFlow:
    """Reviews, sign-off and reopening of ``results.sample``.

    ``window`` is the :class:`gui.main_window.MainWindow` (typed as its Qt base, as in
    :mod:`gui.window_layout`): the parent of the dialogs, its ``show_message``,
    ``update_actions`` and ``update_settings``, and its ``settings`` (replaced when they change)."""

    def __init__(self, window: QMainWindow, *, store: ResultStore | None, workbench: Workbench,
                 samples_panel: SamplesPanel, results: ShownResults):
        self.window = window
        self.store = store
        self.workbench = workbench
        self.samples_panel = samples_panel
        self.results = results

    def reviewer_name(self) -> str | None:
        """Who reviews: the operator name from the settings (asked once if there is none)."""
        name = self.window.settings.operator_name.strip()
        if name:
            return name
        from gui import dialogs

        name = (dialogs.ask_text(self.window, "Your name", "Reviews and sign-offs are recorded under your name:")
                or "")
        if not name:
            self.window.show_message("A name is needed to record reviews (Edit ▸ Settings… ▸ Operator name).")
            return None
        self.window.update_settings(operator_name=name)
        self.samples_panel.default_operator = name
        return name

    def review(self, path: str, final_class: str | None) -> bool:
        """Record the reviewer's class for one image of the results sample (None: withdraw the
        image's review)."""
        from engine.store.results import SignOffError

        sample = self.results.sample
        if sample is None or sample.store_id is None or self.store is None:
            return False
        reviewer = self.reviewer_name()
        if reviewer is None:
            return False
        try:
            when = self.workbench.review(sample, path, final_class, reviewer)
        except SignOffError as exc:
            self.window.show_message(str(exc))
            return False
        except AllSightError as exc:
            gui_errors.show_error(self.window, f"The review could not be saved: {exc}",
                                  gui_errors.format_details(exc))
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
        from engine.store.results import SignOffError

        w = self.window
        sample = self.results.sample
        rp = self.results.panel
        if sample is None or sample.store_id is None or self.store is None:
            w.show_message("Classify the sample before signing it off.")
            return False
        rp.flush()
        blockers = rp.sign_off_blockers()
        if blockers:  # said before asking for a name
            w.show_message(f"Cannot sign off yet: {blockers}")
            return False
        reviewer = self.reviewer_name()
        if reviewer is None:
            return False
        from gui import dialogs

        # What is signed is said in words, and the words are what the record keeps.
        statement = self.workbench.sign_off_statement(sample)
        if not dialogs.confirm(w, f"Sign off sample {sample.sample_id}",
                               f"{statement}\n\nSigned as {reviewer}. The statement is kept with the sample and in "
                               "its audit trail; the sample cannot be changed until it is reopened.",
                               "Sign off", "Cancel"):
            w.show_message("Not signed off.")
            return False
        try:
            self.workbench.sign_off(sample, reviewer, statement,
                                    require_independent=w.settings.require_independent_reviewer)
        except SignOffError as exc:
            w.show_message(str(exc), 12000)
            rp.sign_state_label.setText(f"<span style='color:#e65100'>{exc}</span>")
            return False
        except AllSightError as exc:
            gui_errors.show_error(w, f"The sign-off could not be saved: {exc}", gui_errors.format_details(exc))
            return False
        rp.set_sign_state(sample.signed_off_by, sample.signed_off_at)
        self.samples_panel.refresh_sample(sample)
        w.update_actions()
        w.show_message(f"Sample {sample.sample_id} signed off by {reviewer}.")
        return True

    def reopen(self) -> bool:
        from gui import dialogs

        w = self.window
        sample = self.results.sample
        if sample is None or not sample.signed_off or self.store is None or sample.store_id is None:
            return False
        reason = dialogs.ask_text(w, "Reopen sample", f"Why reopen sample {sample.sample_id}? (kept in the audit log)")
        if not reason:
            w.show_message("Not reopened: a reason is required.")
            return False
        actor = self.reviewer_name()
        if actor is None:
            return False
        try:
            self.workbench.reopen(sample, actor, reason)
        except AllSightError as exc:
            gui_errors.show_error(w, f"The sample could not be reopened: {exc}", gui_errors.format_details(exc))
            return False
        self.results.panel.set_sign_state(None, None)
        self.samples_panel.refresh_sample(sample)
        self.results.update_note(sample)
        w.update_actions()
        w.show_message(f"Sample {sample.sample_id} reopened.")
        return True
