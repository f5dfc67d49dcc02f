"""The domain core: what every other part of the engine, and both front ends, share.

``records`` (the per-image records and the rules on them: flagged, withheld, sign-off
blockers), ``errors`` (the engine's exception types), ``progress`` (``Progress`` records and
cancellation),
``flags`` (flag reason codes and their sentences), ``summary`` (the sample's call from its
images' results), ``paths`` (the per-user folders), ``fsutil`` (atomic writes) and
``logging_setup``. Nothing here imports another engine package, NumPy, torch or Qt.
"""
