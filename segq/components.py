"""Import every module that registers components, so the registries are complete."""
from . import data, losses, models  # noqa: F401
from .engine import optim  # noqa: F401
