"""LoRA written out (lmcourse.models.lora) against its definition and against PEFT's LoRA."""
import pytest
import torch
import torch.nn as nn

from lmcourse.models.lora import LoRALinear, add_lora, lora_parameters, merge_lora, trainable_parameters


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.query = nn.Linear(12, 10)
        self.value = nn.Linear(12, 10)
        self.out = nn.Linear(10, 3)

    def forward(self, x):
        return self.out(torch.relu(self.query(x) + self.value(x)))


def _randomise_b(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, LoRALinear):
            with torch.no_grad():
                m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g))


def test_lora_starts_at_the_base_function_and_freezes_it():
    torch.manual_seed(0)
    base = nn.Linear(8, 5)
    x = torch.randn(4, 8)
    expected = base(x).detach()
    layer = LoRALinear(base, r=2, alpha=4)
    assert torch.equal(layer(x), expected)  # B = 0: exactly the pretrained layer
    assert layer.lora_A.abs().sum() > 0 and torch.count_nonzero(layer.lora_B) == 0
    assert not base.weight.requires_grad and not base.bias.requires_grad
    assert trainable_parameters(layer) == 2 * (8 + 5)


def test_only_a_and_b_train():
    torch.manual_seed(0)
    model = add_lora(Block(), ["query", "value"], r=3, alpha=6)
    assert isinstance(model.query, LoRALinear) and isinstance(model.value, LoRALinear)
    assert isinstance(model.out, nn.Linear) and not isinstance(model.out, LoRALinear)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in lora_parameters(model)}
    assert trainable_parameters(model) == 2 * 3 * (12 + 10)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x, y = torch.randn(16, 12), torch.randint(3, (16,))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    for _ in range(2):  # step 1 moves B only (A's gradient is proportional to B = 0); step 2 moves A too
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
        else:
            assert not torch.equal(p, before[n]), n


def test_merge_equals_unmerged_and_returns_plain_linear():
    torch.manual_seed(0)
    model = add_lora(Block(), ["query", "value"], r=2, alpha=5)
    _randomise_b(model)
    x = torch.randn(7, 12)
    unmerged = model(x).detach()
    base_only = model.out(torch.relu(model.query.base(x) + model.value.base(x))).detach()
    assert not torch.allclose(unmerged, base_only)  # the update is not zero, so merging has work to do
    merge_lora(model)
    assert type(model.query) is nn.Linear and type(model.value) is nn.Linear
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    torch.testing.assert_close(model(x), unmerged, rtol=1e-5, atol=1e-5)


def test_same_outputs_and_counts_as_peft():
    peft = pytest.importorskip("peft")

    class Wrapper(nn.Module):
        def __init__(self, lin):
            super().__init__()
            self.lin = lin

        def forward(self, x):
            return self.lin(x)

    torch.manual_seed(0)
    base = nn.Linear(16, 9)
    ours = LoRALinear(nn.Linear(16, 9), r=4, alpha=8)
    ours.base.load_state_dict(base.state_dict())
    _randomise_b(ours)
    config = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["lin"])
    theirs = peft.get_peft_model(Wrapper(base), config)
    layer = theirs.base_model.model.lin
    with torch.no_grad():  # PEFT keeps A and B as nn.Linear layers: weights (r, in) and (out, r)
        layer.lora_A["default"].weight.copy_(ours.lora_A)
        layer.lora_B["default"].weight.copy_(ours.lora_B)
    x = torch.randn(5, 16)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-6, atol=1e-6)
    assert theirs.get_nb_trainable_parameters()[0] == trainable_parameters(ours) == 4 * (16 + 9)


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="nn.Linear"):
        LoRALinear(nn.Conv1d(2, 2, 1), r=2, alpha=2)
    with pytest.raises(ValueError, match="r must be"):
        LoRALinear(nn.Linear(2, 2), r=0, alpha=2)
    with pytest.raises(ValueError, match="linear layers are named"):
        add_lora(Block(), ["key"], r=2, alpha=2)
