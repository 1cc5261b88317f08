"""One device rule for every stage; errors name the user's option and the stage's kind."""

from __future__ import annotations

import pytest
import torch

from caalib.accelerator import resolve_torch_device
from caalib.errors import ConfigError, FeatureError


def test_auto_and_cpu() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_torch_device("auto").type == expected
    assert resolve_torch_device("cpu") == torch.device("cpu")
    assert resolve_torch_device(torch.device("cpu")) == torch.device("cpu")


def test_errors_name_the_field_and_use_the_stage_error() -> None:
    with pytest.raises(FeatureError, match="^device: unknown device 'gpu9'"):
        resolve_torch_device("gpu9", error=FeatureError)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="^accelerator: 'cuda' requested"):
            resolve_torch_device("cuda", field="accelerator")
