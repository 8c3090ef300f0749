"""lmcourse.dialogue: the chat template and its masks, the generated dialogues, assistant_loss,
reply() stopping at the end of the turn, and the rule-based baseline."""
import random

import pytest
import torch
import torch.nn.functional as F

from lmcourse import dialogue as D
from lmcourse.models import GPT, GPTConfig
from lmcourse.train import TrainConfig, train

CHAT = [{"role": "system", "content": "be brief."}, {"role": "user", "content": "reverse kat"},
        {"role": "assistant", "content": "tak"}]


def test_template_and_masks():
    ids, mask = D.format_chat(CHAT)
    assert D.render(ids) == "<|system|>be brief.<|end|><|user|>reverse kat<|end|><|assistant|>tak<|end|>"
    marked = [i for i, m in zip(ids, mask) if m]
    assert D.decode(marked) == "tak<|end|>"  # the reply and its end token; not the role token
    user_ids, user_mask = D.format_chat(CHAT, train_on="user")
    assert user_ids == ids and D.decode([i for i, m in zip(ids, user_mask) if m]) == "reverse kat<|end|>"
    assert all(D.format_chat(CHAT, train_on="all")[1])
    prompt, pmask = D.format_chat(CHAT[:2], add_generation_prompt=True)
    assert prompt[-1] == D.ASSISTANT and not any(pmask)
    with pytest.raises(ValueError, match="not in the chat alphabet"):
        D.encode("<|end|>")  # a user cannot type a role token


def test_template_errors_name_what_was_expected():
    with pytest.raises(ValueError, match="role 'bot'"):
        D.format_chat([{"role": "bot", "content": "hi"}])
    with pytest.raises(TypeError, match="'role' and 'content'"):
        D.format_chat([("user", "hi")])
    with pytest.raises(ValueError, match="not in the chat alphabet"):
        D.encode("héllo")
    with pytest.raises(ValueError, match="train_on"):
        D.format_chat(CHAT, train_on="bot")


def test_dialogues_are_seeded_fit_the_block_and_hold_out_words():
    assert D.make_dialogues(20, seed=3) == D.make_dialogues(20, seed=3) != D.make_dialogues(20, seed=4)
    rng = random.Random(0)
    lengths = [len(D.format_chat(D.make_dialogue(rng, split))[0]) for split in ("train", "val") for _ in range(3000)]
    assert max(lengths) <= D.BLOCK
    train_text = " ".join(m["content"] for d in D.make_dialogues(3000, seed=1) for m in d if m["role"] == "user")
    for messages, ex in D.test_prompts(60):
        if ex.task in ("reverse", "upper"):
            word = ex.answer.lower() if ex.task == "upper" else ex.answer[::-1]
            assert word not in train_text.split()  # a held-out word: never asked about in training
        if ex.phrasing == "held-out":
            assert messages[-1]["content"] not in train_text
    assert {ex.phrasing for _, ex in D.test_prompts(10)} == {"seen", "held-out"}


def test_assistant_loss_is_the_masked_shifted_mean():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 9, generator=gen, requires_grad=True)
    tokens = torch.randint(9, (3, 6), generator=gen)
    mask = torch.zeros(3, 6, dtype=torch.bool)
    mask[0, 2:5], mask[2, 5] = True, True
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, 9), tokens[:, 1:].reshape(-1), reduction="none").view(3, 5)
    expected = (ce[0, 1:4].sum() + ce[2, 4]) / 4
    loss = D.assistant_loss(logits, tokens, mask)
    assert torch.allclose(loss, expected) and loss.ndim == 0
    loss.backward()
    assert logits.grad[1].abs().sum() == 0 and logits.grad[0, 1:4].abs().sum() > 0  # no gradient off the mask


def test_assistant_loss_input_errors():
    logits, tokens, mask = torch.zeros(2, 4, 5), torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"no assistant target"):
        D.assistant_loss(logits, tokens, torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"no assistant target"):  # position 0 is never a target
        D.assistant_loss(logits, tokens, torch.tensor([[True, False, False, False]] * 2))
    with pytest.raises(ValueError, match=r"shape \(B, T\) = \(2, 4\)"):
        D.assistant_loss(logits, tokens[:, :3], mask)
    with pytest.raises(TypeError, match="bool"):
        D.assistant_loss(logits, tokens, mask.long())
    with pytest.raises(ValueError, match=r"\(B, T, V\)"):
        D.assistant_loss(logits[0], tokens, mask)
    with pytest.raises(ValueError, match="at least 2"):
        D.assistant_loss(logits[:, :1], tokens[:, :1], mask[:, :1])


def test_batches_pad_with_masked_pad_tokens():
    tokens, mask = D.batch_fn(8)("train", torch.Generator().manual_seed(0))
    assert tokens.shape == mask.shape and tokens.shape[0] == 8
    assert not mask[tokens == D.PAD].any() and mask.any(dim=1).all()
    all_tokens, all_mask = D.batch_fn(8, train_on="all")("train", torch.Generator().manual_seed(0))
    assert torch.equal(all_tokens, tokens) and torch.equal(all_mask, tokens != D.PAD)


class Scripted(torch.nn.Module):
    """A 'model' that writes a fixed sequence of tokens, one per call."""

    def __init__(self, script):
        super().__init__()
        self.script, self.dummy = script, torch.nn.Parameter(torch.zeros(1))

    def forward(self, idx, state=None):
        n = 0 if state is None else state
        logits = torch.full((idx.shape[0], idx.shape[1], D.VOCAB_SIZE), -1e9)
        logits[:, -1, self.script[min(n, len(self.script) - 1)]] = 0.0
        return logits, n + 1


def test_reply_stops_at_end_of_turn_or_role_token():
    ok = D.reply(Scripted(D.encode("tak") + [D.END] + D.encode("zzz")), CHAT[:2])
    assert ok == D.Reply("tak", True, False) and ok.well_formed
    rogue = D.reply(Scripted(D.encode("ta") + [D.USER]), CHAT[:2])
    assert rogue.role_token and not rogue.well_formed and rogue.text == "ta"
    runaway = D.reply(Scripted(D.encode("a")), CHAT[:2], max_new_tokens=5)
    assert runaway == D.Reply("aaaaa", False, False)


def test_rule_baseline_knows_the_seen_phrasings_only():
    prompts = D.test_prompts(40)
    replies = [D.rule_based_reply(m) for m, _ in prompts]
    for r, (_, ex) in zip(replies, prompts):
        assert (r.text == ex.answer) == (ex.phrasing == "seen")
    score = D.score_replies(replies, [ex for _, ex in prompts])
    assert score["format"] == 1.0 and score["accuracy"] == 0.5


@pytest.mark.usefixtures("one_thread")
def test_a_tiny_assistant_learns_the_format():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=D.VOCAB_SIZE, block_size=D.BLOCK, n_layer=1, n_head=2, n_embd=32))
    prompts = D.test_prompts(20)
    before = D.score_replies([D.reply(model, m) for m, _ in prompts], [ex for _, ex in prompts])
    train(model, D.batch_fn(16), TrainConfig(steps=80, lr=4e-3, eval_batches=0, progress=False),
          loss_fn=D.chat_loss, device="cpu")
    after = D.score_replies([D.reply(model, m) for m, _ in prompts], [ex for _, ex in prompts])
    assert before["format"] <= 0.3 and after["format"] >= 0.8
