"""One identity in the window: the OS login by default; once the lab requires ALLSight accounts,
the account signed in (File ▸ Sign in…), whose role decides what the window offers and what the
store takes; the sign-off dialog asks for the password again; Tools ▸ Accounts… manages the
accounts and the lab policy (audited). Dialogs are driven as a person would: fields set, then
accept() (tests.gui.conftest.drive_dialog)."""

from __future__ import annotations

import json

import pytest

from engine.core.identity import Permission, Role, os_identity
from engine.store.results import ResultStore, default_db_path
from gui import dialogs as gui_dialogs
from gui.accounts_dialog import AccountForm, AccountsDialog
from gui.sign_in_dialog import SignInDialog
from gui.sign_off_dialog import SignOffDialog
from tests.gui.conftest import drive_dialog, make_sample_folder, make_window, open_sample, wait_classified

ME = os_identity().user
PASSWORDS = {"ada": "admin-pass-1", "tom": "tech-pass-22", "rita": "review-pass-3"}
REFUSED = "user name or password not accepted"


@pytest.fixture
def lab_db():
    """The window's result database with an administrator (ada), a technician (tom) and a
    reviewer (rita), and accounts required."""
    with ResultStore.open(default_db_path()) as store:
        store.accounts.create("ada", PASSWORDS["ada"], Role.ADMINISTRATOR, "Ada Admin", actor="it")
        store.accounts.create("tom", PASSWORDS["tom"], Role.TECHNICIAN, "Tom Tech", actor="it")
        store.accounts.create("rita", PASSWORDS["rita"], Role.REVIEWER, "Rita Reviewer", actor="it")
        store.accounts.set_policy(accounts_required=True, actor="it")
    return default_db_path()


@pytest.fixture
def lab_window(qtbot, wf_settings, lab_db):
    win = make_window(qtbot, wf_settings)
    yield win
    win.shutdown()


def audit(**filters):
    with ResultStore.open(default_db_path()) as store:
        return store.audit(**filters)


def typed(user: str, *passwords: str):
    """A sign-in dialog step: the user name, then each password in turn (accept after each)."""
    def step(dialog: SignInDialog):
        assert dialog.password_edit.echoMode() == dialog.password_edit.EchoMode.Password
        dialog.user_edit.setText(user)
        for password in passwords:
            dialog.password_edit.setText(password)
            dialog.accept()
            if dialog.result():
                return
            assert dialog.error_label.text() == REFUSED and dialog.password_edit.text() == ""
        dialog.reject()
    return step


def sign_in(win, monkeypatch, user: str) -> None:
    drive_dialog(monkeypatch, SignInDialog, typed(user, PASSWORDS[user]))
    assert win.sign_in() and win.identity.user == user


def classify(qtbot, win, tmp_path, name: str):
    sample = open_sample(qtbot, win, make_sample_folder(tmp_path, name, count=2, size=40))
    assert win.classify_current() is not None
    wait_classified(qtbot, win, sample)
    return sample


def test_by_default_the_os_login_acts_and_reviews_are_recorded_under_it(qtbot, wf_settings, tmp_path,
                                                                       monkeypatch):
    from gui.settings import settings_path

    # An older settings file still names an operator: it no longer decides who acted.
    settings_path().parent.mkdir(parents=True, exist_ok=True)
    settings_path().write_text(json.dumps({"schema_version": 1, "operator_name": "T. Typed"}))
    monkeypatch.setattr(gui_dialogs, "ask_text", lambda *a, **k: pytest.fail("asked for a name"))
    win = make_window(qtbot, wf_settings)
    try:
        assert win.identity == os_identity() and win.identity.via == "os"
        assert win.identity_label.text() == f"Signed in: {os_identity().describe()}"
        assert win.act_sign_in.isEnabled() and not win.act_sign_out.isEnabled() and win.act_accounts.isEnabled()
        sample = classify(qtbot, win, tmp_path, "S-os")
        assert sample.operator == os_identity().name  # the sample's operator defaults to who acts
        path = win.results_panel.model.rows[0].path
        assert win.review(path, "Pre")
        assert win.results_panel.model.rows[0].reviewed_by == ME
    finally:
        win.shutdown()
    entries = audit(sample_id="S-os")
    assert {e.actor for e in entries if e.action in ("create_sample", "record_prediction", "record_review")} == {ME}
    assert all("T. Typed" not in (e.actor, str(e.details)) for e in audit())


def test_with_accounts_required_nobody_signed_in_changes_nothing(qtbot, lab_window, tmp_path, monkeypatch, dialogs):
    win = lab_window
    assert win.identity is None and win.identity_label.text() == "Not signed in: File ▸ Sign in…"
    open_sample(qtbot, win, make_sample_folder(tmp_path, "S-none", count=2, size=40))
    assert win.classify_current() is None
    assert "Sign in first (File ▸ Sign in…)" in dialogs[-1]["text"]
    assert audit(action="create_sample") == [] and win.samples_panel.current_sample().store_id is None
    # signed in, tom classifies; signed out again, nobody may review what he classified
    sign_in(win, monkeypatch, "tom")
    win.samples_panel.select_sample(win.samples_panel.samples[0])
    assert win.classify_current() is not None
    wait_classified(qtbot, win, win.samples_panel.current_sample())
    assert win.sign_out() and win.identity is None and not win.act_sign_out.isEnabled()
    n_shown = len(dialogs)
    assert not win.review(win.results_panel.model.rows[0].path, "Pre")
    assert len(dialogs) == n_shown + 1 and dialogs[-1]["text"].startswith("Sign in first (File ▸ Sign in…)")
    assert audit(action="record_review") == []
    assert not win.results_panel.model.rows[0].reviewed


def test_a_refused_sign_in_says_so_and_cancel_leaves_the_window_open_with_nobody(qtbot, lab_window, monkeypatch):
    win = lab_window
    drive_dialog(monkeypatch, SignInDialog, typed("tom", "wrong-password", "tech-pass-2"))
    win.access.sign_in_if_needed()  # what the app does at start-up
    assert win.identity is None and win.isVisible() and "Not signed in" in win.statusBar().currentMessage()
    assert [e.details["username"] for e in audit(action="sign_in_refused")] == ["tom", "tom"]


def test_a_technician_reviews_under_the_account_but_may_not_sign_off(qtbot, lab_window, tmp_path, monkeypatch,
                                                                      dialogs):
    import gui.access_flow

    win = lab_window
    drive_dialog(monkeypatch, SignInDialog, typed("TOM", "wrong-password", PASSWORDS["tom"]))
    assert win.sign_in() and win.identity.user == "tom" and win.identity.role is Role.TECHNICIAN
    assert win.identity_label.text() == "Signed in: Tom Tech (ALLSight account, technician)"
    assert win.act_sign_out.isEnabled() and not win.act_accounts.isEnabled()
    assert "Needs an administrator account" in win.act_accounts.toolTip()
    sample = classify(qtbot, win, tmp_path, "S-tech")
    assert sample.operator == "Tom Tech"
    rp = win.results_panel
    for row in list(rp.model.rows):
        assert win.review(row.path, "Benign")
    win.samples_panel.patient_id_edit.setText("P-7")
    win.samples_panel.patient_id_edit.textEdited.emit("P-7")
    win.samples_panel.patient_id_edit.editingFinished.emit()
    assert rp.sign_off_blockers() == ""  # ready to sign, but not by a technician
    for widget in (win.act_sign_off, rp.sign_off_button):
        assert not widget.isEnabled() and widget.toolTip().startswith("Needs a reviewer or administrator account")
    assert not win.sign_off()
    assert dialogs[-1]["text"].startswith("Cannot sign samples off. Needs a reviewer or administrator account")
    # Reached anyway (the window's own check skipped): the store refuses, one clear message.
    monkeypatch.setattr(gui.access_flow, "refusal", lambda identity, permission: "")
    drive_dialog(monkeypatch, SignOffDialog, lambda d: (d.password_edit.setText(PASSWORDS["tom"]), d.accept()))
    assert not win.sign_off() and not sample.signed_off
    assert "Tom Tech (technician) may not sign samples off" in dialogs[-1]["text"]
    actors = {(e.action, e.actor) for e in audit(sample_id="S-tech")}
    assert {("create_sample", "tom"), ("record_prediction", "tom"), ("record_review", "tom"),
            ("update_sample", "tom")} <= actors
    assert "sign_off" not in {a for a, _ in actors}


def test_a_reviewer_signs_off_only_with_the_right_password(qtbot, lab_window, tmp_path, monkeypatch):
    win = lab_window
    sign_in(win, monkeypatch, "rita")
    sample = classify(qtbot, win, tmp_path, "S-rev")
    for row in list(win.results_panel.model.rows):
        assert win.review(row.path, "Pre")
    assert win.act_sign_off.isEnabled() and win.results_panel.sign_off_button.isEnabled()
    seen: list[tuple[str, str, bool, str]] = []

    def wrong_then_cancel(dialog: SignOffDialog):
        dialog.password_edit.setText("not-ritas-password")
        dialog.accept()
        seen.append((dialog.statement_label.text(), dialog.signer_label.text(),
                     dialog.password_edit.echoMode() == dialog.password_edit.EchoMode.Password,
                     dialog.error_label.text()))
        assert not dialog.result()  # still open: nothing signed
        with ResultStore.open(default_db_path()) as store:
            assert not store.get_sample("S-rev").signed_off
        dialog.reject()

    def right(dialog: SignOffDialog):
        dialog.password_edit.setText(PASSWORDS["rita"])
        dialog.accept()

    drive_dialog(monkeypatch, SignOffDialog, wrong_then_cancel, right)
    assert not win.sign_off() and not sample.signed_off
    statement, signer, echo_off, error = seen[0]
    assert statement.startswith("I have reviewed the 2 flagged images of sample S-rev")
    assert signer == "Signed as Rita Reviewer." and echo_off and error == f"not signed off: {REFUSED}"
    assert win.sign_off() and sample.signed_off_by == "rita"
    with ResultStore.open(default_db_path()) as store:
        stored = store.get_sample("S-rev")
    assert stored.signed_off_by == "rita" and stored.sign_off_statement == statement
    assert [e.actor for e in audit(action="sign_off")] == ["rita"]


def test_the_accounts_dialog_adds_an_account_and_requires_accounts_all_audited(qtbot, window, monkeypatch):
    store = window.store
    form_seen: list[str] = []

    def new_admin(form: AccountForm):
        assert form.values().role is Role.ADMINISTRATOR  # offered for the policy: preset
        form.user_edit.setText("ada")
        form.name_edit.setText("Ada Admin")
        form.password_edit.setText(PASSWORDS["ada"])
        form.repeat_edit.setText("admin-pass-2")
        form.accept()
        form_seen.append(form.error_label.text())
        form.repeat_edit.setText(PASSWORDS["ada"])
        form.accept()

    questions: list[str] = []
    answers = iter([False, True])
    monkeypatch.setattr(gui_dialogs, "confirm", lambda parent, title, text, yes, no: questions.append(title)
                        or next(answers))

    def manage(dialog: AccountsDialog):
        dialog.require_check.click()  # no administrator yet: offered one; declined
        assert not dialog.require_check.isChecked() and not store.accounts_required
        drive_dialog(monkeypatch, AccountForm, new_admin)
        dialog.require_check.click()  # offered again; this time an administrator is made first
        assert dialog.require_check.isChecked() and store.accounts_required
        assert [dialog.table.item(0, c).text() for c in range(4)] == ["ada", "Ada Admin", "administrator", "yes"]
        dialog.reject()

    drive_dialog(monkeypatch, AccountsDialog, manage)
    assert window.open_accounts()
    assert questions == ["No administrator account"] * 2 and form_seen == ["The two passwords differ."]
    assert [(e.actor, e.details.get("username")) for e in store.audit(action="account_created")] == [(ME, "ada")]
    assert [(e.actor, e.details) for e in store.audit(action="policy_changed")] == [(ME, {"accounts_required": True})]
    # the OS login no longer acts: the window asks for a sign-in
    assert window.identity is None and "Not signed in" in window.identity_label.text()
    assert not window.act_accounts.isEnabled()


def test_an_administrator_manages_roles_and_passwords(qtbot, lab_window, monkeypatch):
    win = lab_window
    sign_in(win, monkeypatch, "ada")
    assert win.act_accounts.isEnabled()

    def manage(dialog: AccountsDialog):
        dialog.select("tom")
        dialog.role_combo.setCurrentIndex(dialog.role_combo.findData(Role.REVIEWER))
        assert dialog.set_role()
        dialog.select("rita")
        assert dialog.toggle_active() and dialog.active_button.text() == "Reactivate"
        monkeypatch.setattr("gui.accounts_dialog.ask_password", lambda parent, user: "tom-new-pass-1")
        dialog.select("tom")
        assert dialog.reset_password()
        dialog.independent_check.click()
        dialog.reject()

    drive_dialog(monkeypatch, AccountsDialog, manage)
    assert win.open_accounts()
    store = win.store
    assert store.accounts.get("tom").role is Role.REVIEWER and not store.accounts.get("rita").active
    assert store.accounts.policy.independent_reviewer_required
    assert {e.action for e in store.audit(actor="ada")} >= {"account_changed", "password_changed", "policy_changed"}
    drive_dialog(monkeypatch, SignInDialog, typed("tom", "tom-new-pass-1"))
    assert win.sign_in() and win.identity.role is Role.REVIEWER


def test_changing_the_model_needs_the_models_permission_and_is_audited(qtbot, lab_window, tiny_model_path,
                                                                      monkeypatch, dialogs):
    from engine.models.resolve import resolve_model_card
    from gui import settings_dialog

    win = lab_window
    sign_in(win, monkeypatch, "tom")
    dialog = settings_dialog.SettingsDialog(win.settings,
                                            model_refusal=win.access.refusal(Permission.CHANGE_MODELS))
    qtbot.addWidget(dialog)
    assert not dialog.model_combo.isEnabled() and not dialog.threshold_edit.isEnabled()
    assert "Needs an administrator account" in dialog.model_combo.toolTip()
    assert not win.apply_settings(win.settings.replace(active_model="baseline"))  # reached anyway: refused
    assert win.settings.active_model == str(tiny_model_path) and audit(action="model_changed") == []
    assert dialogs[-1]["text"].startswith("Cannot change the model")
    sign_in(win, monkeypatch, "ada")
    assert win.apply_settings(win.settings.replace(review_threshold_override=0.25))
    [entry] = audit(action="model_changed")
    assert entry.actor == "ada" and entry.details["model"] == str(tiny_model_path)
    assert entry.details["sha256"] == resolve_model_card(str(tiny_model_path)).weights_sha256
    assert entry.details["review_threshold_override"] == 0.25 and win.settings.review_threshold_override == 0.25


def test_a_signed_in_person_changes_their_own_password_after_typing_the_current_one(qtbot, lab_window,
                                                                                   monkeypatch, dialogs):
    win = lab_window
    assert not win.act_change_password.isEnabled()  # nobody signed in
    sign_in(win, monkeypatch, "tom")
    assert win.act_change_password.isEnabled()
    forms: list[str] = []

    def wrong_current(form: AccountForm):
        forms.append(form.windowTitle())
        # only the three password fields are on screen (no stray user/role widgets in a corner)
        assert not any(w.isVisibleTo(form) for w in (form.user_edit, form.name_edit, form.role_combo))
        assert form.current_edit.isVisibleTo(form)
        form.current_edit.setText("not-my-password")
        form.password_edit.setText("tom-new-pass-9")
        form.repeat_edit.setText("tom-new-pass-9")
        form.accept()

    def right_current(form: AccountForm):
        form.accept()  # nothing typed yet: refused by the form itself
        forms.append(form.error_label.text())
        form.current_edit.setText(PASSWORDS["tom"])
        form.password_edit.setText("tom-new-pass-9")
        form.repeat_edit.setText("tom-new-pass-9")
        form.accept()

    drive_dialog(monkeypatch, AccountForm, wrong_current, right_current)
    assert win.change_password()
    assert forms == ["Change your password", "Enter your current password."]
    assert "current password was not accepted" in dialogs[-1]["text"]
    changes = win.store.audit(action="password_changed")
    assert [(e.actor, e.details["username"]) for e in changes][-1] == ("tom", "tom")
    win.sign_out()
    drive_dialog(monkeypatch, SignInDialog, typed("tom", "tom-new-pass-9"))
    assert win.sign_in() and win.identity.user == "tom"


def test_the_sign_in_dialog_says_when_a_name_is_locked_out(qtbot, lab_window, monkeypatch):
    from engine.store.lockout import MAX_REFUSED_SIGN_INS

    seen: list[str] = []

    def attempts(dialog: SignInDialog):
        for _ in range(MAX_REFUSED_SIGN_INS):
            dialog.user_edit.setText("tom")
            dialog.password_edit.setText("wrong-password")
            dialog.accept()
        dialog.password_edit.setText(PASSWORDS["tom"])
        dialog.accept()
        seen.append(dialog.error_label.text())
        dialog.reject()

    drive_dialog(monkeypatch, SignInDialog, attempts)
    assert not lab_window.sign_in()
    assert seen and seen[0].startswith("too many refused sign-ins") and lab_window.identity is None
