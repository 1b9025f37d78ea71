"""Raw kernels: functions on numpy arrays, no autograd."""

from . import fast, reference

__all__ = ["fast", "reference"]
