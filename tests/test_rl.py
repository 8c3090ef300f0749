"""GRPO on addition (lmcourse.rl): the task, the checker, the advantages, and that a step learns."""
import copy

import pytest
import torch

from lmcourse import rl
from lmcourse.models import GPT, GPTConfig
from lmcourse.train import TrainConfig, make_optimizer


def tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=len(rl.VOCAB), block_size=rl.PROMPT_LEN + rl.ANSWER_LEN,
                         n_layer=1, n_head=2, n_embd=16))


class Oracle(torch.nn.Module):
    """Answers every prompt right (or ``off`` too high): the model contract, with the text as its state."""

    def __init__(self, off=0):
        super().__init__()
        self.off = off
        self.dummy = torch.nn.Parameter(torch.zeros(()))  # so that the model has a device

    def forward(self, idx, state=None):
        full = idx if state is None else torch.cat([state, idx], dim=1)
        logits = torch.full((*idx.shape, len(rl.VOCAB)), -1e4)
        for row, ids in enumerate(full.tolist()):
            text = "".join(rl.VOCAB[i] for i in ids)
            if len(text) >= rl.PROMPT_LEN:
                a, b = int(text[:2]), int(text[3:5])
                answer = f"{(a + b + self.off) % 200:03d}"
                done = len(text) - rl.PROMPT_LEN
                if done < rl.ANSWER_LEN:
                    logits[row, -1, rl.VOCAB.index(answer[done])] = 0.0
        return logits, full


def test_group_advantages_on_hand_values():
    adv = rl.group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]), group_size=4)
    # group 1: mean 1/4, population std sqrt(3)/4, so (1 - 1/4) / (sqrt(3)/4) = sqrt(3)
    assert torch.allclose(adv[:4], torch.tensor([3 ** 0.5, -1 / 3 ** 0.5, -1 / 3 ** 0.5, -1 / 3 ** 0.5]), atol=1e-4)
    assert torch.equal(adv[4:], torch.zeros(4))  # all equal rewards: no signal
    assert torch.allclose(rl.group_advantages(torch.rand(12), 3).view(4, 3).sum(1), torch.zeros(4), atol=1e-5)
    assert torch.equal(rl.group_advantages(torch.zeros(6), 3), torch.zeros(6))


def test_checker_accepts_only_the_exact_answer():
    assert rl.answer_text((37, 48)) == "085" and rl.check((37, 48), "085")
    for wrong in ("85", "085 ", " 085", "+85", "086", "0850", "", "58"):
        assert not rl.check((37, 48), wrong), wrong
    assert rl.check((99, 99), "198") and rl.check((0, 0), "000")
    ids = rl.encode_answers([(37, 48), (1, 2)])
    assert torch.equal(rl.rewards([(37, 48), (1, 2)], ids), torch.tensor([1.0, 1.0]))
    assert torch.equal(rl.rewards([(37, 48), (1, 3)], ids), torch.tensor([1.0, 0.0]))
    assert rl.decode(rl.encode_prompts([(7, 48)])[0]) == "07+48="


def test_held_out_problems_never_reach_training():
    train, test = rl.split_problems(500, seed=3)
    assert len(test) == 500 and len(train) == 10_000 - 500
    assert not set(train) & set(test)
    assert (train, test) == rl.split_problems(500, seed=3)  # deterministic
    # SFT batches are drawn from the problems they are given, and learn only the answer
    x, y = rl.sft_batches(train, 256)("train", torch.Generator().manual_seed(0))
    seen = {(int(rl.decode(r[:2])), int(rl.decode(r[3:5]))) for r in x}
    assert seen <= set(train)
    assert (y[:, :rl.PROMPT_LEN - 1] == -100).all() and (y[:, rl.PROMPT_LEN - 1:] >= 0).all()


def test_accuracy_with_an_oracle():
    _, test = rl.split_problems(50)
    assert rl.accuracy(Oracle(), test) == 1.0
    assert rl.accuracy(Oracle(off=1), test) == 0.0


def test_one_grpo_step_raises_the_rewarded_answer():
    model = tiny_gpt()
    problem = (37, 48)
    right = rl.encode_answers([problem])
    completions = torch.cat([right, torch.tensor([[1, 9, 6], [1, 7, 3], [1, 6, 2]])])  # no digit in common
    prompts = rl.encode_prompts([problem] * 4)
    reward = rl.rewards([problem] * 4, completions)
    assert reward.tolist() == [1.0, 0.0, 0.0, 0.0]
    advantage = rl.group_advantages(reward, 4)
    reference = copy.deepcopy(model)
    before = rl.completion_log_probs(model, prompts, completions).sum(1).detach()
    optimizer = make_optimizer(model, TrainConfig(lr=1e-2, weight_decay=0.0))
    logp = rl.completion_log_probs(model, prompts, completions)
    with torch.no_grad():
        ref_logp = rl.completion_log_probs(reference, prompts, completions)
    loss, kl = rl.grpo_loss(logp, ref_logp, advantage, kl_coef=0.05)
    assert kl.item() == pytest.approx(0.0, abs=1e-7)  # the policy is its reference before the step
    loss.backward()
    optimizer.step()
    after = rl.completion_log_probs(model, prompts, completions).sum(1).detach()
    assert after[0] > before[0] + 0.05  # the rewarded answer became more likely
    assert (after[1:] < before[1:]).all()  # the others less


def test_zero_variance_groups_leave_the_model_unchanged():
    model = tiny_gpt(seed=1)  # untrained: every sampled answer is wrong, so every group is all zeros
    start = copy.deepcopy(model.state_dict())
    loss_fn, _ = rl.grpo_train(model, [(37, 48), (12, 34)], steps=2, prompts_per_step=2, group_size=4,
                               kl_coef=0.0, device="cpu")
    assert [r["reward"] for r in loss_fn.log] == [0.0, 0.0]
    assert [r["zero_variance"] for r in loss_fn.log] == [1.0, 1.0]
    assert all(torch.equal(start[k], v) for k, v in model.state_dict().items())


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="n_test"):
        rl.split_problems(10_000)
    with pytest.raises(TypeError, match="n_test"):
        rl.split_problems(2.5)
    with pytest.raises(ValueError, match="0..99"):
        rl.encode_prompts([(100, 1)])
    with pytest.raises(ValueError, match="non-empty"):
        rl.accuracy(tiny_gpt(), [])
    with pytest.raises(ValueError, match="divisible by group_size"):
        rl.group_advantages(torch.ones(5), 2)
    with pytest.raises(TypeError, match="completion must be a str"):
        rl.check((1, 2), 3)
    with pytest.raises(ValueError, match="at least 2"):
        rl.GRPOLoss(tiny_gpt(), group_size=1)
    with pytest.raises(ValueError, match=r"shape \(N, answer length\)"):
        rl.rewards([(1, 2)], torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"prompts must have shape"):
        rl.sample_group(tiny_gpt(), torch.zeros(2, 4, dtype=torch.long), 2)


def test_supervised_start_stops_at_the_target_or_the_cap():
    train, val = rl.split_problems(20, seed=1)
    model = tiny_gpt()
    start = copy.deepcopy(model.state_dict())
    curve = rl.supervised_start(model, train, val, target=0.0, max_steps=10, check_every=2, batch_size=8,
                                lr=1e-2, device="cpu")
    assert curve == [(0, 0.0)]  # reached before any step: the weights are untouched
    assert all(torch.equal(start[k], v) for k, v in model.state_dict().items())
    curve = rl.supervised_start(model, train, val, target=1.0, max_steps=4, check_every=2, batch_size=8,
                                lr=1e-2, device="cpu")
    assert [s for s, _ in curve] == [0, 2, 4]  # never reached: trained to the cap, measured every 2 steps
    assert not all(torch.equal(start[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="target"):
        rl.supervised_start(model, train, val, target=1.5, max_steps=4, check_every=2, batch_size=8, lr=1e-2)
