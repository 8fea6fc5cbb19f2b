"""The training engine shared by all estimators."""
from .callbacks import Callback, EarlyStopping, ProgressBar
from .device import (loadable_device, predict_in_batches, prediction_chunk_rows,
                     resolve_device, to_tensor, wait_for_gpu)
from .members import (bootstrap_counts, member_mean, member_rows, per_member,
                      select_members)
from .random import make_generator, spawn_generator
from .trainer import Trainer, float32_term, stratified_split

__all__ = ["Callback", "EarlyStopping", "ProgressBar", "Trainer", "bootstrap_counts",
           "float32_term", "loadable_device", "make_generator", "member_mean",
           "member_rows", "per_member", "predict_in_batches", "prediction_chunk_rows",
           "resolve_device", "select_members", "spawn_generator", "stratified_split",
           "to_tensor", "wait_for_gpu"]
