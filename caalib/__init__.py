"""Support library of the CAA-Net reproducibility study.

Dependencies flow one way, in the order the data travels:
datasets -> features -> models -> training -> results -> cli / notebooks.
"""

__version__ = "0.1.0"
