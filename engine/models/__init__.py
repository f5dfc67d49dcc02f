"""Models: the registry of builders, the built-in architectures, model files (safetensors
weights + JSON card) and Grad-CAM.

``registry`` (``@register_model``, ``build_model``, ``get_spec``), ``zoo`` (the baseline CNN and
the torchvision backbones), ``checkpoint`` (reading, verifying and writing model files) and
``gradcam``. Only ``zoo``, ``gradcam`` and building a network import torch.
"""
