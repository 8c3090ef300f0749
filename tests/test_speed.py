"""lmcourse.speed: time to first token, per-token latency and throughput, on a fake clock."""
import pytest
import torch

from lmcourse import speed as speed_module
from lmcourse.speed import GenerationSpeed, generation_speed


class ClockedModel(torch.nn.Module):
    """A model whose every call advances a fake clock by 1 ms per token read, plus 10 ms."""

    def __init__(self, clock):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(5))
        self.clock = clock

    def forward(self, idx, state=None):
        self.clock[0] += 0.010 + 0.001 * idx.shape[1]
        return torch.zeros(*idx.shape, 5), state


@pytest.fixture
def clocked(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(speed_module.time, "perf_counter", lambda: clock[0])
    return ClockedModel(clock)


def test_generation_speed_splits_the_prompt_from_the_steps(clocked):
    speed = generation_speed(clocked, torch.zeros(3, 20, dtype=torch.long), 5, temperature=0)
    # first token: one call reading 20 tokens (30 ms); then one call of 1 token per token (11 ms)
    assert speed.batch_size == 3 and speed.new_tokens == 5
    assert speed.token_times == pytest.approx((0.030, 0.041, 0.052, 0.063, 0.074))
    assert speed.time_to_first_token == pytest.approx(0.030)
    assert speed.per_token_latency == pytest.approx(0.011)
    assert speed.tokens_per_second == pytest.approx(15 / 0.074)
    assert "first token after 30.0 ms" in str(speed)


def test_without_the_cache_each_token_costs_more_than_the_last(clocked):
    speed = generation_speed(clocked, torch.zeros(20, dtype=torch.long), 4, temperature=0, use_cache=False)
    gaps = [b - a for a, b in zip(speed.token_times, speed.token_times[1:])]
    assert gaps == pytest.approx([0.031, 0.032, 0.033])  # re-reading 21, 22, 23 tokens
    assert speed.per_token_latency == pytest.approx(0.032)  # the median gap


def test_generation_speed_of_a_single_token_and_bad_lengths(clocked):
    speed = generation_speed(clocked, torch.zeros(4, dtype=torch.long), 1)
    assert speed.per_token_latency == 0.0 and speed.total_seconds == speed.time_to_first_token
    for bad in (0, -2):
        with pytest.raises(ValueError, match="max_new_tokens must be an integer >= 1"):
            generation_speed(clocked, torch.zeros(4, dtype=torch.long), bad)
    for bad in (1.5, True):
        with pytest.raises(TypeError, match="max_new_tokens must be an integer >= 1"):
            generation_speed(clocked, torch.zeros(4, dtype=torch.long), bad)
    assert isinstance(speed, GenerationSpeed)
