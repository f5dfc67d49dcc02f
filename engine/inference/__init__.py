"""Classifying images with a trained model: the :class:`~engine.inference.classifier.Classifier`,
its runtimes (ONNX Runtime, torch) and the cached ONNX copy of a model (``onnx_export``), scoring and calibration, the out-of-distribution detector,
and the classifier served from a child process (``process``).
"""
