"""The classification service: classify what a sample is missing and record each result as it
arrives. Both front ends call it — ``classify --db`` (:mod:`cli.classify`) and the desktop app's
batch queue (:mod:`gui.batch`) — so a sample resumes, records and refuses the same way from either.

Two steps:

1. :func:`prepare_sample` adds the run's images to a sample that is already registered (the
   naming rule is :meth:`engine.store.results.ResultStore.register_sample` with
   :mod:`engine.store.naming`) and returns a :class:`SamplePlan`: which images the model has
   still to classify (not classified yet: a run after a crash resumes there; its latest result
   an error: retried; the file replaced since it was classified: classified again), which
   results are stored and reused (an ``ok`` result of this model for the file's current
   content), and, for a signed-off sample, which images cannot be added and which files no
   longer match the signed-off results.
2. :func:`classify_samples` streams the plans' pending images through a classifier, commits the
   results of each network batch together (one transaction per sample: a lab database's round
   trips are paid once per batch, not per image) before yielding them — a crash loses at most the
   batch being classified, which the next run classifies again — checks for cancellation between
   results, and yields one :class:`ImageClassified` per image.
   A sample signed off meanwhile (on another workstation) is not changed: its remaining results
   are yielded with ``recorded=False`` and the store's reason.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Protocol, TypeVar

from engine.core.errors import AllSightError, Cancelled
from engine.core.progress import CancelToken
from engine.core.records import ImageResult, ImageStatus, ReviewedImage
from engine.models.card import ModelCard
from engine.store.errors import SignOffError, StoreUnavailableError
from engine.store.leases import LEASE_SECONDS, Lease
from engine.store.naming import image_key, storable
from engine.store.results import STORED_CONTENT, NewPrediction, ResultStore

log = logging.getLogger(__name__)

#: While the lab database cannot be reached, the run tries again after 1 s, then twice as long
#: each time, at most this long: a server back after a restart is noticed within seconds.
RETRY_MAX_S = 10.0
_T = TypeVar("_T")


class PathClassifier(Protocol):
    """What the service needs of a classifier: the in-process
    :class:`engine.inference.classifier.Classifier` and the child-process
    :class:`engine.inference.process.ClassifierProcess` both are one."""

    card: ModelCard

    def classify_paths(self, paths: Iterable[str | Path], *, batch_size: int = ..., workers: int = ...,
                       cancel: CancelToken | None = None) -> Iterator[ImageResult]: ...


@dataclass(frozen=True)
class SamplePlan:
    """What a run has to do for one registered sample, decided before anything is classified."""

    sample_id: str
    #: The sample is signed off: nothing is added or classified, stored results stand.
    signed_off: bool
    #: Images in the sample (in the store, this run's included).
    total: int
    #: Image keys the model has still to classify, in the sample's order: never classified, the
    #: latest result an error (retried), or the file replaced since.
    pending: tuple[str, ...]
    #: Image key -> the model's stored result for it, with its review: reused, not classified
    #: again (an ``ok`` result for the file's current content; for a signed-off sample, whatever
    #: it was signed off with).
    stored: Mapping[str, ReviewedImage] = field(default_factory=lambda: MappingProxyType({}))
    #: This run's image keys the store does not take (so not classified): not part of a
    #: signed-off sample, or a file name the store cannot keep; :meth:`refusal` says which.
    refused: frozenset[str] = frozenset()
    #: Pending image key -> the sha256 of the content planned for (``None``: unreadable), recorded
    #: with its result, so a result is never filed under a file that replaced it meanwhile.
    content: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))
    #: A signed-off sample's image keys whose file no longer matches the signed-off results
    #: (replaced, edited or deleted since): not changed, for the front ends to warn about.
    changed: tuple[str, ...] = ()

    @property
    def done_before(self) -> int:
        """Images of the sample the model had classified before this run."""
        return self.total - len(self.pending)

    def refusal(self, key: str) -> str:
        """Why the refused image ``key`` gets no result (one sentence for a person)."""
        if not storable(key):
            return ("not classified: the file name is not valid UTF-8, so its result could not be kept in "
                    "the history (rename the file, or classify without --db)")
        return (f"not classified: sample {self.sample_id} is signed off and this image is not part of it "
                "(reopen the sample to add it)")


def prepare_sample(store: ResultStore, sample_id: str, paths: Sequence[str | os.PathLike[str]],
                   model_sha256: str, *, actor: str = "") -> SamplePlan:
    """Add ``paths`` to the (registered) sample unless it is signed off, and plan the run."""
    sample = store.get_sample(sample_id)
    if sample is None:
        raise AllSightError(f"sample {sample_id} is not in the result store {store.path}")
    keys = [image_key(p) for p in paths]
    unstorable = frozenset(k for k in keys if not storable(k))  # refused, one by one; the rest go on
    keys = [k for k in keys if k not in unstorable]
    changed: tuple[str, ...] = ()
    if sample.signed_off:
        pending: tuple[str, ...] = ()
        changed = tuple(store.changed_images(sample_id))
    else:
        store.add_images(sample_id, keys, actor=actor)  # also notices replaced files
        pending = tuple(store.pending_paths(sample_id, model_sha256))
    waiting = set(pending)
    # A pending image's stored result (an error, to be retried) is not reused.
    stored = {r.path: r for r in store.predictions(sample_id, model_sha256) if r.path not in waiting}
    content = {im.path: im.sha256 for im in store.images(sample_id) if im.path in waiting}
    refused = frozenset(k for k in keys if sample.signed_off and k not in stored) | unstorable
    registered = store.get_sample(sample_id)
    total = registered.n_images if registered is not None else len(keys)
    return SamplePlan(sample_id, sample.signed_off, total, pending, MappingProxyType(stored), refused,
                      MappingProxyType(content), changed)


@dataclass(frozen=True)
class ImageClassified:
    """One image classified by :func:`classify_samples` (the service's progress record)."""

    sample_id: str
    result: ImageResult
    #: Committed to the store by this call (False: already stored by another run, or refused).
    recorded: bool
    #: Images of this sample with a result of the model, this one included, and in all.
    done: int
    total: int
    #: Why the result was not recorded ("" when it was): the sample was signed off meanwhile.
    refusal: str = ""

    @property
    def failed(self) -> bool:
        return self.result.status != ImageStatus.OK


@dataclass(frozen=True)
class StoreWait:
    """The run is paused because the lab database cannot be reached: ``reason`` (the store's
    message), how long it has waited so far and when it tries again. Nothing is lost: the
    result in hand is recorded when the server is back."""

    reason: str
    waited_s: float
    retry_in_s: float

    def describe(self) -> str:
        return (f"waiting for the lab database (unreachable for {self.waited_s:.0f} s; trying again in "
                f"{self.retry_in_s:.0f} s; nothing is lost): {self.reason}")


def when_available(call: Callable[[], _T], *, cancel: CancelToken | None = None,
                   waiting: Callable[[StoreWait], None] | None = None) -> _T:
    """``call()``, tried again while it raises :class:`StoreUnavailableError` (the server is
    down), each wait reported to ``waiting``; :class:`Cancelled` when ``cancel`` is set meanwhile."""
    delay, started = 1.0, None
    while True:
        try:
            return call()
        except StoreUnavailableError as exc:
            started = time.monotonic() if started is None else started
            wait = StoreWait(str(exc), time.monotonic() - started, delay)
            log.warning("%s", wait.describe())
            if waiting is not None:
                waiting(wait)
            if cancel is not None:
                if cancel.wait(delay):
                    raise Cancelled() from None
            else:
                time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)


def classify_samples(store: ResultStore, classifier: PathClassifier, plans: Sequence[SamplePlan], *,
                     order: Sequence[str | Path] | None = None, actor: str = "", batch_size: int = 64,
                     workers: int = 2, cancel: CancelToken | None = None,
                     waiting: Callable[[StoreWait], None] | None = None) -> Generator[ImageClassified, None, None]:
    """Classify the plans' pending images in one stream and record the results as they arrive,
    ``batch_size`` at a time (the classifier's batches, whose results arrive together), each run
    of one sample's results in one transaction, before they are yielded.

    ``order`` (image paths, each pending in one of the plans; results carry the path as given)
    is the order to classify in; by default each plan's pending images in turn. Raises :class:`~engine.core.errors.Cancelled`
    between results once ``cancel`` is set, after recording the results in hand; what was
    recorded stays recorded, and so do the results in hand when the classifier fails. Closing
    the generator early stops the classifier (results in hand and not yet yielded are not
    recorded: the next run classifies them again).

    When the lab database stops answering mid-run, the run pauses: the result in hand is kept,
    ``waiting`` gets a :class:`StoreWait` at each try, and the run goes on where it was when the
    server is back (recording is idempotent, so a commit whose answer was lost is not doubled).
    A run paused longer than the lease lasts may find the sample taken by another workstation:
    :class:`~engine.store.leases.SampleBusyError` then ends it.
    """
    owner = {key: plan for plan in plans for key in plan.pending}
    paths: Sequence[str | Path] = (
        [key for plan in plans for key in plan.pending] if order is None else order)
    unknown = [p for p in paths if image_key(p) not in owner]
    if unknown:
        raise AllSightError(f"{unknown[0]} is not waiting to be classified in any sample of this run")
    done = {plan.sample_id: plan.done_before for plan in plans}
    refused: dict[str, str] = {}  # sample -> why the store refused it during this run
    card = classifier.card
    # One workstation classifies a sample at a time (a lab database is shared): take each
    # sample's lease first; SampleBusyError says who holds it. Renewed while the run goes on.
    leases = _take_leases(store, [p.sample_id for p in plans if p.pending], actor)
    renewed = time.monotonic()
    record_every = max(1, int(batch_size))
    held: list[tuple[str, ImageResult]] = []  # results in hand, recorded together (one transaction)

    def record_held() -> Iterator[ImageClassified]:
        """Record the results in hand, a sample's run of them per transaction, then yield them."""
        batch, held[:] = list(held), []
        for sid, group in itertools.groupby(batch, key=lambda held_result: owner[held_result[0]].sample_id):
            run = list(group)
            plan = owner[run[0][0]]
            recorded = [False] * len(run)
            if sid not in refused:
                items = [NewPrediction(key, result, plan.content.get(key, STORED_CONTENT)) for key, result in run]
                try:
                    recorded = when_available(
                        partial(store.record_predictions, sid, items, card.id, card.version, card.weights_sha256,
                                actor=actor), cancel=cancel, waiting=waiting)
                except SignOffError as exc:  # signed off elsewhere while this run was going
                    refused[sid] = str(exc)
            for (_key, result), was_recorded in zip(run, recorded, strict=True):
                done[sid] += 1
                yield ImageClassified(sid, result, was_recorded, done[sid], plan.total, refused.get(sid, ""))

    results = iter(classifier.classify_paths(paths, batch_size=batch_size, workers=workers, cancel=cancel))
    try:
        for path in paths:
            try:
                result = next(results)
            except StopIteration:
                break
            except BaseException:
                yield from record_held()  # what was classified before the failure (or the cancel) is kept
                raise
            if time.monotonic() - renewed > LEASE_SECONDS / 3:
                leases = [when_available(partial(store.leases.renew, lease), cancel=cancel, waiting=waiting)
                          for lease in leases]
                renewed = time.monotonic()
            held.append((image_key(path), result))
            # A network batch's results arrive together: recording them as one costs no latency.
            if len(held) >= record_every or (cancel is not None and cancel.cancelled):
                yield from record_held()
                if cancel is not None:
                    cancel.raise_if_cancelled()
        yield from record_held()
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()  # stops the classifier's workers when the run ends early
        _give_back(store, leases)


def _take_leases(store: ResultStore, sample_ids: list[str], holder: str) -> list[Lease]:
    taken: list[Lease] = []
    try:
        for sample_id in dict.fromkeys(sample_ids):
            taken.append(store.leases.acquire(sample_id, holder))
    except BaseException:
        _give_back(store, taken)
        raise
    return taken


def _give_back(store: ResultStore, leases: list[Lease]) -> None:
    for lease in leases:
        try:
            store.leases.release(lease)
        except AllSightError:  # the database went away: the lease runs out by itself
            log.warning("could not release the lease on sample %s; it runs out by itself", lease.sample_id)


__all__ = ["RETRY_MAX_S", "ImageClassified", "PathClassifier", "SamplePlan", "StoreWait", "classify_samples",
           "prepare_sample", "when_available"]
