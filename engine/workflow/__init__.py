"""Workflows over the store and the classifier that both front ends run the same way: the
classification service (:mod:`engine.workflow.classification`)."""
