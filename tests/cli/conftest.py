from pathlib import Path

import pytest

from hcmoco.config import load_params
from hcmoco.synth.generate import generate_domain

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def smoke_params() -> dict:
    return load_params(REPO / "params/params.yaml", "smoke")


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory, smoke_params) -> Path:
    """Every SynthHuman domain rendered once at smoke sizes (shared by the CLI tests)."""
    root = tmp_path_factory.mktemp("synth")
    for domain in smoke_params["synth"]["domains"]:
        generate_domain(domain, smoke_params["synth"], root / domain, workers=2)
    return root
