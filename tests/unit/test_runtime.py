"""precision `auto`: the choice, its reason, and the one-time measurement it is cached from."""
import torch

from hcmoco.train import runtime


def test_auto_on_a_cpu_is_measured_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "PRECISION_CACHE", tmp_path / "precision")
    torch.manual_seed(0)
    before = torch.rand(3)
    torch.manual_seed(0)
    choice, why = runtime.resolve_precision("auto", torch.device("cpu"), "narrow", 32, 2)
    assert torch.equal(torch.rand(3), before)  # measuring did not move the run's random numbers
    assert choice in ("fp32", "bf16") and why.startswith("auto: bf16 measured ")
    speedup = float(why.split("measured ")[1].split("x")[0])
    assert (choice == "bf16") == (speedup >= runtime.BF16_MIN_SPEEDUP)
    [cached] = (tmp_path / "precision").glob("*.json")
    monkeypatch.setattr("hcmoco.models.HRNet", None)  # a second call does not measure (nor build a net) again
    assert runtime.resolve_precision("auto", torch.device("cpu"), "narrow", 32, 2) == (choice, why)
    assert list((tmp_path / "precision").glob("*.json")) == [cached]


def test_bf16_wins_exactly_when_the_cache_says_it_pays(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "PRECISION_CACHE", tmp_path)
    monkeypatch.setattr(runtime, "_cpu_bf16_speedup", lambda *a: 1.4)
    assert runtime.resolve_precision("auto", torch.device("cpu"), "w18", 64, 8)[0] == "bf16"
    monkeypatch.setattr(runtime, "_cpu_bf16_speedup", lambda *a: 1.1)
    assert runtime.resolve_precision("auto", torch.device("cpu"), "narrow", 64, 8)[0] == "fp32"
    assert runtime.resolve_precision("fp64", torch.device("cpu"), "narrow") == ("fp64", "set in params")
