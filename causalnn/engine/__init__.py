"""The training engine shared by all estimators."""
from .callbacks import Callback, EarlyStopping, ProgressBar
from .device import predict_in_batches, resolve_device
from .random import make_generator
from .trainer import Trainer, stratified_split

__all__ = ["Callback", "EarlyStopping", "ProgressBar", "Trainer", "make_generator",
           "predict_in_batches", "resolve_device", "stratified_split"]
