"""Training machinery shared by pre-training, search and retraining: loops (task-agnostic),
mirror mode, devices and the distributed seam."""
from .loops import (DivergedError, EpochResult, SearchSteps, StopFlag, evaluate, search_epoch, search_rounds,
                    train_epoch, train_step)

__all__ = ["DivergedError", "EpochResult", "SearchSteps", "StopFlag", "evaluate", "search_epoch", "search_rounds",
           "train_epoch", "train_step"]
