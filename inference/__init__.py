"""FaceGraft runtime: sequences, EXR I/O, colour, detection, tracking, alignment, rendering.

Never imports torch: this is what a render node or a farm worker loads.
"""
__version__ = "0.1.0"
