"""Models: the registry of builders, the built-in architectures, model files (safetensors
weights + JSON card) and Grad-CAM.

``spec`` (``@register_model``), ``registry`` (``build_model``, ``get_spec``), ``zoo`` (the baseline CNN and
the torchvision backbones), ``card`` (the model card and its validation), ``checkpoint`` (reading,
verifying and writing model files), ``resolve`` (which model a name or ``None`` means;
``load_model``), ``installed`` and ``library`` (the lab's models and the active one) and ``gradcam``.
``zoo``, ``registry`` (it loads the zoo) and ``gradcam`` import torch; ``spec``, ``card``,
``checkpoint``, ``resolve``, ``installed`` and ``library`` do not at import, so the ONNX inference
path and the GUI process never load it.
"""
