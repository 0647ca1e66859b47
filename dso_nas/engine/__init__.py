"""Training loops shared by pre-training, search and retraining."""
from .loops import (DivergedError, EpochResult, StopFlag, evaluate, search_epoch, search_rounds, train_epoch,
                    train_step)

__all__ = ["DivergedError", "EpochResult", "StopFlag", "evaluate", "search_epoch", "search_rounds",
           "train_epoch", "train_step"]
