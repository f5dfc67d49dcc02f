"""Image processing on NumPy arrays: the original work's preprocessing (contrast enhancement,
LAB colour masks), white-cell detection, training augmentation and the shortcut probes.
"""
