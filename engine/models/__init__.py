"""Models: the registry of builders, the built-in architectures, model files (safetensors
weights + JSON card) and Grad-CAM.

``spec`` (``@register_model``), ``registry`` (``build_model``, ``get_spec``), ``zoo`` (the baseline CNN and
the torchvision backbones), ``checkpoint`` (reading, verifying and writing model files) and
``gradcam``. ``zoo``, ``registry`` (it loads the zoo) and ``gradcam`` import torch; ``spec``
(``@register_model``) and ``checkpoint`` do not, so the ONNX inference path never loads it.
"""
