"""``models ...``: the model library (:mod:`engine.models.library`) for the lab scientist and IT.

    python main.py models list                          every model, which is active, results per model
    python main.py models show REF                      one model's card: version, training data, figures
    python main.py models activate REF --reason TEXT    promote, or roll back to an earlier model
    python main.py models import FILE.safetensors       verify and install a model (card beside it)
    python main.py models export REF DIR                weights + card, for another workstation
    python main.py models delete REF                    a lab model that is not active
    python main.py models publish REF [--activate --reason TEXT] --db URL
                                                        share a model through the lab database
    python main.py models sync --db URL                 install and activate the lab's active model here

REF is a shipped id (``resnet18``), ``id@version`` or a sha256 prefix. Activation needs the
models permission on the result database (``--db``, default the app's): it is recorded in the
audit trail (who, when, why, both models' sha256) before the switch, and refused there, the
active model stays as it was.

``publish`` stores the model in the lab database (``--db``, before or after the command) and, with
``--activate``, makes it the lab's active model: every workstation sharing the database switches
to it at its next start, or at ``models sync``, which checks every file's sha256 before installing
(:mod:`engine.store.lab_models`, :mod:`engine.workflow.lab_sync`). A rollback is publishing (or
naming) an earlier model with ``--activate`` again.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from cli.signin import acting_user, add_account_option
from engine.core.errors import AllSightError
from engine.core.textsafe import printable


def _figures(model) -> str:
    figure = model.test_figure
    return f"{figure[0]} accuracy {figure[1] * 100:.1f} %" if figure else "no test figures"


def _store(args: argparse.Namespace):
    from engine.store.engines import is_url
    from engine.store.results import ResultStore, default_db_path

    if args.db and is_url(args.db):  # a lab database
        return ResultStore.open(args.db)
    path = Path(args.db) if args.db else default_db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return ResultStore.open(path)


def cmd_list(args: argparse.Namespace, library) -> int:
    from engine.store.results import default_db_path

    counts: dict[str, int] = {}
    if (Path(args.db) if args.db else default_db_path()).exists():  # listing never creates a database
        with _store(args) as store:
            counts = store.results_per_model()
    try:
        active_sha = library.active().sha256
    except AllSightError as exc:
        active_sha = ""
        print(printable(f"warning: {exc}"))
    latest = library.latest_activations()
    for m in library.models():
        mark = "*" if m.sha256 == active_sha else " "
        promoted = latest.get(m.sha256)
        who = f"  promoted by {promoted.by} {promoted.at[:10]}" if promoted else ""
        print(printable(f"{mark} {m.ref:<28} {m.source.value:<8} {m.sha256[:12]}  {m.card.created[:10]:<10}  "
                        f"{_figures(m):<24} {counts.get(m.sha256, 0):>6} results{who}"))
    for problem in library.problems():
        print(printable(f"  unusable: {problem}"))
    return 0


def cmd_show(args: argparse.Namespace, library) -> int:
    m = library.find(args.ref)
    card = m.card
    data = {"model": m.ref, "source": m.source.value, "sha256": m.sha256, "architecture": card.architecture,
            "created": card.created, "installed": {"at": m.installed_at, "by": m.installed_by, "origin": m.origin},
            "image_size": card.image_size, "trained_on": dict(card.data_fingerprint),
            "training": dict(card.training), "metrics": dict(card.metrics),
            # the ONNX graphs (fp32; INT8 with its fp32 check's bands, agreement and timing)
            "graphs": {kind: dict(entry) for kind, entry in card.graphs.items()},
            "promotions": [a.audit_details() | {"at": a.at, "by": a.by} for a in library.history()
                           if a.sha256 == m.sha256]}
    print(json.dumps(data, indent=2, default=str))
    return 0


def cmd_activate(args: argparse.Namespace, library) -> int:
    with _store(args) as store:
        user = acting_user(store, args)
        activation = library.activate(
            args.ref, by=user, reason=args.reason,
            record=lambda a: store.record_event("model_changed", actor=user, **a.audit_details()))
    print(printable(f"active model: {activation.model} (sha256 {activation.sha256[:12]}), "
                    f"was {activation.previous_model or 'none'}"))
    return 0


def cmd_import(args: argparse.Namespace, library) -> int:
    with _store(args) as store:
        user = acting_user(store, args)
        m = library.install(args.file, by=user, origin=f"imported from {Path(args.file).resolve()}")
        store.record_event("model_installed", actor=user, model=m.ref, sha256=m.sha256, origin=m.origin)
    print(printable(f"installed {m.ref} (sha256 {m.sha256[:12]}) in {m.folder}; "
                    f"activate it with: models activate {m.ref} --reason ..."))
    return 0


def cmd_export(args: argparse.Namespace, library) -> int:
    path = library.export(args.ref, args.folder)
    print(printable(f"exported to {path} (and its card {path.with_suffix('.json').name})"))
    return 0


def cmd_delete(args: argparse.Namespace, library) -> int:
    with _store(args) as store:
        user = acting_user(store, args)
        target = library.find(args.ref)
        store.record_event("model_deleted", actor=user, model=target.ref, sha256=target.sha256)
        m = library.delete(target.ref)
    print(printable(f"deleted {m.ref} (sha256 {m.sha256[:12]}); its stored results keep naming it"))
    return 0


def _where(store) -> str:
    if store.dialect == "postgresql":
        return f"the lab database {store.path}"
    return (f"the database file {store.path} (not a lab server: only the workstations that open this file "
            "follow it)")


def cmd_publish(args: argparse.Namespace, library) -> int:
    reason = (args.reason or "").strip()
    if args.activate and not reason:
        raise AllSightError("--activate needs --reason: why the lab changes its model (kept in the audit trail)")
    if reason and not args.activate:
        raise AllSightError("--reason goes with --activate (publishing alone changes no workstation's model)")
    model = library.find(args.ref)
    with _store(args) as store:
        user = acting_user(store, args)
        assert model.card.path is not None
        published = store.publish_lab_model(model.card.path, actor=user)
        shared = "published" if published.created else "already published"
        print(printable(f"{shared}: {model.ref} (sha256 {model.sha256[:12]}) in {_where(store)}"))
        if not args.activate:
            return 0
        before = store.lab_active_model()
        activation = store.activate_lab_model(model.sha256, reason, actor=user)
        if before is not None and before.pk == activation.pk:
            print(printable(f"{model.ref} already is the lab's active model ({before.describe()})"))
        else:
            was = before.ref if before is not None else "none"
            print(printable(f"the lab's active model is now {model.ref} (was {was}); every workstation switches to "
                            "it at its next start, or with: models sync"))
        return _follow(store, library, user)


def _follow(store, library, user: str) -> int:
    from engine.workflow.lab_sync import SyncOutcome, sync_lab_model

    result = sync_lab_model(store, library, by=user)
    if result.outcome is SyncOutcome.REFUSED:
        raise AllSightError(result.message)
    print(printable(result.message))
    return 0


def cmd_sync(args: argparse.Namespace, library) -> int:
    from engine.core.identity import os_login

    with _store(args) as store:
        # Following the lab changes nothing in the database: no sign-in, whatever the role.
        return _follow(store, library, store.user.user if store.user is not None else os_login())


COMMANDS: dict[str, Callable[..., int]] = {"list": cmd_list, "show": cmd_show, "activate": cmd_activate,
                                           "import": cmd_import, "export": cmd_export, "delete": cmd_delete,
                                           "publish": cmd_publish, "sync": cmd_sync}


def cmd_models(args: argparse.Namespace) -> int:
    from engine.models.library import ModelLibrary

    return COMMANDS[args.models_command](args, ModelLibrary())


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="the installed models: list, show, activate (promote or roll back), "
                                      "import, export, delete")
    p.add_argument("--db", metavar="DB", help="result database for the audit trail and the result counts "
                                               "(default: the app's)")
    add_account_option(p)
    cmds = p.add_subparsers(dest="models_command", required=True, metavar="COMMAND")
    cmds.add_parser("list", help="every model; * marks the active one")
    cmds.add_parser("show", help="one model's card, training data and figures").add_argument("ref", metavar="REF")
    act = cmds.add_parser("activate", help="make REF the active model (recorded with the reason)")
    act.add_argument("ref", metavar="REF")
    act.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    cmds.add_parser("import", help="verify and install a model file").add_argument("file", metavar="FILE")
    exp = cmds.add_parser("export", help="copy a model (weights + card) into a folder")
    exp.add_argument("ref", metavar="REF")
    exp.add_argument("folder", metavar="DIR")
    cmds.add_parser("delete", help="delete a lab model that is not active").add_argument("ref", metavar="REF")
    pub = cmds.add_parser("publish", help="store REF in the lab database (--db) for every workstation; with "
                                          "--activate, make it the lab's active model")
    pub.add_argument("ref", metavar="REF")
    pub.add_argument("--activate", action="store_true", help="make it the lab's active model (a rollback too)")
    pub.add_argument("--reason", help="why, with --activate (kept in the audit trail)")
    sync = cmds.add_parser("sync", help="install (verified) and activate the lab database's active model here")
    for sub_parser in (pub, sync):  # --db after the command too; default: the one given before it
        sub_parser.add_argument("--db", metavar="DB", default=argparse.SUPPRESS,
                                help="the lab database: postgresql://user@host:5432/allsight (or a file)")
    p.set_defaults(func=cmd_models)


REGISTRARS = [_add_models]
