"""ALLSight desktop GUI (PySide6). Imports ``engine``; the engine never imports this package.

Start-up stays light: importing ``gui.app`` and showing the main window must not import torch;
modules that need it (inference, Grad-CAM) are imported when first used.
"""
