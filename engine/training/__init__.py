"""Training, calibrating, re-fitting and evaluating models on labelled class-folder data sets,
and the metrics they report.
"""
