"""Run the Triton kernels through the CPU interpreter unless told otherwise.

The variable must be set before any ``@triton.jit`` in ``kernels`` is executed, i.e. before the
test modules import the Triton modules; a conftest is collected first. On a GPU box, run with
``TRITON_INTERPRET=0`` to test the compiled kernels on CUDA tensors instead.
"""

import os

import pytest
import torch

os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def device() -> torch.device:
    """CPU tensors for the interpreter, CUDA tensors for compiled kernels."""
    return torch.device("cpu" if os.environ["TRITON_INTERPRET"] == "1" else "cuda")
