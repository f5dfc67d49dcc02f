"""Reading images and scanning folders: the one way every path in ALLSight gets pixels.
"""
