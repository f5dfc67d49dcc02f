"""The result store's exception types."""

from __future__ import annotations

from engine.core.errors import AllSightError


class StoreError(AllSightError):
    """The result database cannot be opened, is too new, or refused an operation."""


class StoreUnavailableError(StoreError):
    """The lab database server cannot be reached now (stopped, restarting, network lost): the
    operation did not happen, and the same call may be tried again when the server is back."""


class StoreLoginError(StoreError):
    """The lab database server refused the user name or password (or wanted a password and was
    given none): unlike an unreachable server, another password may succeed, so a front end
    can ask the person for one and try again."""


class SignOffError(StoreError):
    """A sample cannot be signed off (or changed because it already is).

    ``n_unreviewed`` flagged images still lack a review; ``n_pending`` images have no prediction.
    """

    def __init__(self, message: str, *, n_unreviewed: int = 0, n_pending: int = 0):
        self.n_unreviewed = n_unreviewed
        self.n_pending = n_pending
        super().__init__(message)


class ReviewConflictError(StoreError):
    """Someone else changed an image's review after the reviewer saw it (another workstation):
    nothing was written. ``current_class`` (``None``: not reviewed), ``changed_by`` and
    ``changed_at`` say what the review is now."""

    def __init__(self, message: str, *, current_class: str | None, changed_by: str, changed_at: str):
        self.current_class = current_class
        self.changed_by = changed_by
        self.changed_at = changed_at
        super().__init__(message)
