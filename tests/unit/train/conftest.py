from __future__ import annotations

import pandas as pd
import pytest
import torch
from _train_frames import sp500_frame, synthetic_frame

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def frame() -> pd.DataFrame:
    return synthetic_frame()


@pytest.fixture(scope="session")
def spx() -> pd.DataFrame:
    return sp500_frame()
