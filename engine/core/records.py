"""The domain's shared vocabulary: values that the store, the sample summary, the reports and
both front ends must agree on."""

from __future__ import annotations

#: A reviewer's verdict for an image that should not count towards any class (not a usable
#: smear, unreadable, out of distribution...). Accepted by the store's ``record_review`` besides
#: the :data:`engine.CLASS_IDS`.
EXCLUDED_CLASS = "Excluded"
