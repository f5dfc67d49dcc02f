"""``classify --db``: the result store's side of a run. Which database ``--db`` names, registering
each sample and planning it (per image: classify, read back from the store, or refuse because the
sample is signed off), and the stream of results the classification service records.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.classify_messages import say
from cli.classify_plan import SampleGroup
from engine.store.naming import image_key

if TYPE_CHECKING:  # the engine's heavy modules load only once the inputs are known
    from engine.core.records import ImageResult
    from engine.models.card import ModelCard
    from engine.store.results import ResultStore
    from engine.workflow.classification import ImageClassified, SamplePlan, StoreWait


@dataclass
class ImageEntry:
    """One scanned image: where its result comes from."""

    path: Path
    sample_id: str | None = None
    stored: Any = None  # an ImageResult rebuilt from the store
    refused: str | None = None  # why it was not classified (a signed-off sample)


def resolve_db_path(value: str) -> Path | str:
    """The database ``--db VALUE`` names: ``default`` is the application's own; a URL
    (``postgresql://user@host/allsight``) is a lab database, kept as the URL."""
    from engine.store.engines import is_url

    if value == "default":
        from engine.store.results import default_db_path

        return default_db_path()
    return value if is_url(value) else Path(value)


def prepare_store(store: ResultStore, groups: list[SampleGroup], images: tuple[Path, ...], card: ModelCard,
                  operator: str, actor: str) -> tuple[list[ImageEntry], list[SamplePlan]]:
    """Register each sample, add its images and plan it (:func:`engine.workflow.classification.prepare_sample`):
    per image, classify or read back. Returns one entry per scanned image, in scan order, and the plans.
    A group whose sample ID the store changed (``NAME (2)``) gets the new ID."""
    from engine.workflow.classification import prepare_sample

    by_path: dict[Path, ImageEntry] = {}
    plans: list[SamplePlan] = []
    say(f"result store: {store.path}")
    used: set[str] = set()
    for g in groups:
        sample = _register(store, g, operator, used, actor)
        used.add(g.sample_id)
        plan = prepare_sample(store, g.sample_id, g.paths, card.weights_sha256, actor=actor)
        plans.append(plan)
        if plan.signed_off:
            _say_signed_off(g, sample, plan)
        entries = _entries(g, plan)
        by_path.update((e.path, e) for e in entries)
        _say_planned(g, entries)
    return [by_path[p] for p in images], plans


def _register(store: ResultStore, g: SampleGroup, operator: str, used: set[str], actor: str) -> Any:
    """The group's sample in the store, ``g.sample_id`` set to the ID the store gave it."""
    sample, _ = store.register_sample(g.sample_id, g.folder, operator=operator, taken=used, actor=actor)
    if sample.sample_id != g.sample_id:
        say(f"note: sample {g.sample_id!r} of the result store holds another folder; "
            f"{g.folder or 'these files'} are sample {sample.sample_id!r}")
        g.sample_id = sample.sample_id
    return sample


def _say_signed_off(g: SampleGroup, sample: Any, plan: SamplePlan) -> None:
    say(f"sample {g.sample_id}: signed off by {sample.signed_off_by} at {sample.signed_off_at}; "
        f"not changed, its stored results are output as they are")
    if plan.changed:  # the signed record no longer describes the files on disk
        say(f"WARNING: sample {g.sample_id}: {len(plan.changed)} of its image file(s) changed on disk "
            f"after it was signed off (first: {plan.changed[0]}); the signed results describe the "
            "files as they were")


def _entries(g: SampleGroup, plan: SamplePlan) -> list[ImageEntry]:
    """The group's images, each with its stored result or why it is refused, per the plan."""
    entries = []
    for p in g.paths:
        entry = ImageEntry(p, g.sample_id)
        key = image_key(p)
        if key in plan.stored:
            entry.stored = plan.stored[key].as_result(p)
        elif key in plan.refused:
            entry.refused = plan.refusal(key)
        entries.append(entry)
    return entries


def _say_planned(g: SampleGroup, entries: list[ImageEntry]) -> None:
    n_stored = sum(e.stored is not None for e in entries)
    n_refused = sum(e.refused is not None for e in entries)
    n_todo = len(g.paths) - n_stored - n_refused
    line = (f"sample {g.sample_id}: {len(g.paths)} image(s), {n_stored} already in the result store, "
            f"{n_todo} to classify")
    if n_refused:
        line += f", {n_refused} not added (signed off)"
    say(line)


def say_waiting(wait: StoreWait) -> None:
    """The run is paused: the lab database is down (said at each try, so the log shows how long)."""
    say(wait.describe())


def recorded(events: Iterator[ImageClassified], tally: Counter[str]) -> Generator[ImageResult, None, None]:
    """The results of the classification service, counting what it recorded and saying once per
    sample when the store refused it (signed off while this run was going)."""
    told: set[str] = set()
    try:
        for event in events:
            tally["recorded"] += event.recorded
            if event.refusal and event.sample_id not in told:
                told.add(event.sample_id)
                say(f"sample {event.sample_id}: {event.refusal}; its remaining results are not recorded")
            yield event.result
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
