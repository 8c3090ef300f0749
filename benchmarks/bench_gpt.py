"""The small GPT: the figures of issue 4, measured side by side.

1. Training speed. lmcourse's ``GPT`` trained by ``lmcourse.train.train``
   against a minimal GPT written out below in plain PyTorch (nanoGPT's shape:
   pre-norm blocks, fused q/k/v, ``scaled_dot_product_attention``, tied head)
   trained by the least a loop can be: zero_grad, forward, loss, backward,
   AdamW step. Same shape (nanoGPT's CPU configuration: 4 layers, 4 heads,
   128 dimensions, batches of 12 x 64 characters). The bare loop is timed with
   PyTorch's default AdamW, as a plain script would run it, and with the fused
   AdamW the course uses, which leaves the loop's own overhead.
2. Quality per compute on character-level tiny-shakespeare (first 90 % train,
   last 10 % validation, as nanoGPT splits it): the course's recipe against
   nanoGPT's CPU recipe, both for 2000 steps x 12 x 64 tokens, no more
   parameters than nanoGPT's; validation loss on the whole validation split,
   and loss against wall time.
3. Generation: greedy decoding with the KV cache against re-reading the whole
   prefix for every new token, at 128 / 512 / 1024 new tokens; identical
   tokens, then the time.
4. Metrics: our BLEU and ROUGE against sacrebleu and rouge_score on 10,000
   generated sentence pairs; equal results, then the time.

Timed contestants run in rotating rounds (see ``timing.py``).

    .venv/bin/python benchmarks/bench_gpt.py [--quick] [--threads N] [--data PATH]

Part 2 uses ``--data`` (default: tiny_shakespeare.txt in the ``shared/data``
folder beside the project, if there is one), else ``load_text("tiny_shakespeare")``.
``main()`` returns the figures as a dict.
"""
from __future__ import annotations

import argparse
import copy
import math
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import alternate, report, speed_ratio  # noqa: E402

from lmcourse import metrics, speed  # noqa: E402
from lmcourse.data.batching import random_windows, sequential_windows  # noqa: E402
from lmcourse.generate import generate  # noqa: E402
from lmcourse.models.gpt import GPT, GPTConfig  # noqa: E402
from lmcourse.train import TrainConfig, train  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tiny_shakespeare.txt"
LAYERS, HEADS, EMBD, BLOCK, BATCH, STEPS = 4, 4, 128, 64, 12, 2000  # nanoGPT's README CPU run

# nanoGPT's CPU recipe (its README command line on top of train_shakespeare_char.py).
NANOGPT = dict(lr=1e-3, warmup_steps=100, min_lr_ratio=0.1, weight_decay=0.1, betas=(0.9, 0.99))
NANOGPT_MODEL = dict(positions="learned", bias=True)
# The course's recipe: what lesson 06 teaches. From a small sweep (validation loss, one seed each):
# nanoGPT's recipe 1.90; lr 3e-3 1.77; + rotary positions 1.73 (lr 5e-3: 1.73); + a 200-step warm-up
# and a cosine down to 2 % of the peak at lr 4e-3: 1.72. Rotary positions also drop the position table.
COURSE = dict(lr=4e-3, warmup_steps=200, min_lr_ratio=0.02, weight_decay=0.1, betas=(0.9, 0.99))
COURSE_MODEL = dict(positions="rotary", bias=True)


# ---------------------------------------------------------------------------
# A minimal GPT in plain PyTorch: the reference for the speed of part 1


class BareBlock(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.up, self.down = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(y.transpose(1, 2).reshape(B, T, C))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class BareGPT(nn.Module):
    def __init__(self, vocab: int, block: int = BLOCK, d: int = EMBD, layers: int = LAYERS, heads: int = HEADS):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(block, d)
        self.blocks = nn.Sequential(*[BareBlock(d, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.tok.weight

    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        return self.head(self.ln(self.blocks(x)))


def bare_loop(model, get_batch, steps: int, lr: float, fused: bool | None, seed: int = 0) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, fused=fused)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        x, y = get_batch("train", generator)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1)).backward()
        optimizer.step()


# ---------------------------------------------------------------------------
# Data


def load_chars(path: Path | None) -> tuple[torch.Tensor, torch.Tensor, int, str]:
    """Character ids of the train and validation splits (90 / 10), the vocabulary size, the source."""
    if path is not None and path.exists():
        text, source = path.read_text(encoding="utf-8"), str(path)
    else:
        from lmcourse.data.corpora import load_text

        corpus = load_text("tiny_shakespeare")
        text, source = corpus.text[:1_115_394], corpus.source  # tiny-shakespeare's length
    chars = sorted(set(text))
    lookup = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([lookup[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(data))
    return data[:n], data[n:], len(chars), source


def batch_sampler(train_ids: torch.Tensor, val_ids: torch.Tensor, batch: int = BATCH, block: int = BLOCK):
    """``get_batch(split, generator)`` over the two splits: random windows, as nanoGPT draws them."""
    data = {"train": train_ids, "val": val_ids}
    return lambda split, generator: random_windows(data[split], batch, block, generator)


@torch.no_grad()
def full_val_loss(model, val_ids: torch.Tensor, block: int = BLOCK) -> float:
    """Mean loss over every non-overlapping window of the validation split: no sampling noise."""
    x, y = sequential_windows(val_ids, block)
    model.eval()
    total = 0.0
    for i in range(0, len(x), 256):
        out = model(x[i:i + 256])
        logits = out[0] if isinstance(out, tuple) else out
        total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y[i:i + 256].reshape(-1),
                                 reduction="sum").item()
    model.train()
    return total / y.numel()


# ---------------------------------------------------------------------------
# 1. Training speed


def bench_speed(vocab: int, get_batch, steps: int, rounds: int) -> dict:
    torch.manual_seed(0)
    course = GPT(GPTConfig(vocab_size=vocab, block_size=BLOCK, n_layer=LAYERS, n_head=HEADS, n_embd=EMBD,
                           **COURSE_MODEL))
    same_as_bare = GPT(GPTConfig(vocab_size=vocab, block_size=BLOCK, n_layer=LAYERS, n_head=HEADS,
                                 n_embd=EMBD, **NANOGPT_MODEL))
    bare = BareGPT(vocab)
    config = TrainConfig(steps=steps, eval_batches=0, progress=False, **dict(COURSE, warmup_steps=0))
    times = alternate({
        "course (recipe model)": lambda: train(copy.deepcopy(course), get_batch, config, device="cpu"),
        "course (bare's model)": lambda: train(copy.deepcopy(same_as_bare), get_batch, config, device="cpu"),
        "bare, default AdamW": lambda: bare_loop(copy.deepcopy(bare), get_batch, steps, config.lr, None),
        "bare, fused AdamW": lambda: bare_loop(copy.deepcopy(bare), get_batch, steps, config.lr, True),
    }, rounds)
    print(f"training speed: {LAYERS} layers, {HEADS} heads, {EMBD} dims, batch {BATCH}x{BLOCK}, "
          f"{torch.get_num_threads()} threads, {rounds} rounds of {steps} steps")
    result = {f"{name} tokens/s": rate for name, rate in report(times, steps * BATCH * BLOCK).items()}
    for course_name in ("course (recipe model)", "course (bare's model)"):
        for bare_name in ("bare, default AdamW", "bare, fused AdamW"):
            ratio = speed_ratio(times[course_name], times[bare_name])
            result[f"{course_name} / {bare_name}"] = ratio
            print(f"  {course_name} / {bare_name}: {ratio:.3f}x")
    return result


# ---------------------------------------------------------------------------
# 2. Quality at nanoGPT's CPU budget


def bench_quality(vocab: int, train_ids, val_ids, steps: int) -> dict:
    get_batch = batch_sampler(train_ids, val_ids)
    result = {}
    for name, recipe, shape in (("nanoGPT recipe", NANOGPT, NANOGPT_MODEL), ("course recipe", COURSE, COURSE_MODEL)):
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=vocab, block_size=BLOCK, n_layer=LAYERS, n_head=HEADS, n_embd=EMBD,
                              **shape))
        recipe = dict(recipe, warmup_steps=recipe["warmup_steps"] * steps // STEPS)  # shorter with --quick
        config = TrainConfig(steps=steps, eval_interval=max(1, steps // 8), eval_batches=20, progress=False,
                             **recipe)
        history = train(model, get_batch, config, device="cpu")
        elapsed = {r["step"]: r["elapsed"] for r in history.train}
        curve = [(elapsed.get(r["step"], 0.0), r["step"], r["loss"]) for r in history.val]
        val = full_val_loss(model, val_ids)
        result[name] = {"val_loss": val, "params": model.param_count(), "seconds": history.train[-1]["elapsed"]}
        print(f"  {name}: {model.param_count():,} parameters ({model.param_count(non_embedding=False):,} "
              f"with position embeddings), {steps} steps x {BATCH} x {BLOCK} = {steps * BATCH * BLOCK:,} tokens, "
              f"{result[name]['seconds']:.0f} s of training")
        print(f"    validation loss over the whole split: {val:.4f} nats/char ({val / math.log(2):.3f} bits)")
        print("    loss against wall time (20 random val batches):  "
              + ", ".join(f"{s:.0f}s {loss:.3f}" for s, _, loss in curve))
    return result


# ---------------------------------------------------------------------------
# 3. KV cache


def bench_kv_cache(lengths: tuple[int, ...], rounds: int, vocab: int = 65, prompt_len: int = 16) -> dict:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=vocab, block_size=prompt_len + max(lengths), n_layer=LAYERS,
                          n_head=HEADS, n_embd=EMBD, **COURSE_MODEL)).eval()
    prompt = torch.randint(vocab, (1, prompt_len))
    print(f"KV cache: greedy decoding, {LAYERS} layers x {EMBD} dims, prompt of {prompt_len} tokens, "
          f"untrained weights (speed does not depend on them), {rounds} rounds")
    result = {}
    for n in lengths:
        cached = generate(model, prompt, n, temperature=0)
        assert torch.equal(cached, generate(model, prompt, n, temperature=0, use_cache=False)), n
        times = alternate({
            "with cache": lambda: speed.generation_speed(model, prompt, n, temperature=0).total_seconds,
            "re-read prefix": lambda: speed.generation_speed(model, prompt, n, temperature=0,
                                                             use_cache=False).total_seconds,
        }, rounds)
        speedup = speed_ratio(times["with cache"], times["re-read prefix"])
        result[n] = speedup
        print(f"  {n:5} new tokens: identical output; with cache {statistics.median(times['with cache']):.2f} s, "
              f"re-reading {statistics.median(times['re-read prefix']):.2f} s: {speedup:.1f}x faster")
    return result


# ---------------------------------------------------------------------------
# 4. BLEU and ROUGE against the reference libraries


def sentence_pairs(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Hypothesis/reference pairs: a random sentence and a noisy copy (words dropped, swapped, replaced)."""
    rng = random.Random(seed)
    words = [w + s for w in ("cat", "dog", "sat", "on", "the", "mat", "red", "ran", "fast", "a", "over", "hill",
                             "Nina", "naïve", "café", "don't") for s in ("", "s")] + [",", ".", "!", "?"]
    hyps, refs = [], []
    for _ in range(n):
        ref = [rng.choice(words) for _ in range(rng.randint(3, 30))]
        hyp = [w for w in ref if rng.random() > 0.15]
        for _ in range(rng.randint(0, 3)):
            if hyp:
                hyp[rng.randrange(len(hyp))] = rng.choice(words)
        if len(hyp) > 2 and rng.random() < 0.3:
            i = rng.randrange(len(hyp) - 1)
            hyp[i], hyp[i + 1] = hyp[i + 1], hyp[i]
        hyps.append(detokenize(hyp))
        refs.append(detokenize(ref))
    return hyps, refs


def detokenize(words: list[str]) -> str:
    """Join words as text is written: punctuation sticks to the word before it."""
    return "".join(w if w in ",.!?" else " " + w for w in words).strip()


def bench_text_metrics(n: int, rounds: int) -> dict:
    import sacrebleu
    from rouge_score import rouge_scorer

    hyps, refs = sentence_pairs(n)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])

    def reference_rouge() -> dict:
        scores = [scorer.score(r, h) for h, r in zip(hyps, refs)]
        return {k: statistics.fmean(s[k].fmeasure for s in scores) for k in ("rouge1", "rouge2", "rougeL")}

    ours_bleu, their_bleu = metrics.bleu(hyps, refs), sacrebleu.corpus_bleu(hyps, [refs]).score
    ours_rouge, their_rouge = metrics.rouge(hyps, refs), reference_rouge()
    assert abs(ours_bleu - their_bleu) < 0.01, (ours_bleu, their_bleu)
    assert all(abs(ours_rouge[k] - their_rouge[k]) < 1e-6 for k in their_rouge), (ours_rouge, their_rouge)
    contestants = {
        "lmcourse bleu": lambda: metrics.bleu(hyps, refs),
        "sacrebleu": lambda: sacrebleu.corpus_bleu(hyps, [refs]),
        "lmcourse rouge": lambda: metrics.rouge(hyps, refs),
        "rouge_score": reference_rouge,
    }
    # alternate() reads a float result as the run's own time: drop the scores, time from outside.
    times = alternate({name: (lambda run=run: [run()]) for name, run in contestants.items()}, rounds)
    print(f"BLEU and ROUGE on {n:,} pairs: BLEU {ours_bleu:.4f} (sacrebleu {their_bleu:.4f}); ROUGE-1/2/L "
          + "/".join(f"{ours_rouge[k]:.6f}" for k in ("rouge1", "rouge2", "rougeL")) + " (equal to rouge_score)")
    result = {}
    for name, seconds in times.items():
        result[f"{name} seconds"] = statistics.median(seconds)
        print(f"  {name:15} {statistics.median(seconds):.3f} s (median of {rounds})")
    result["bleu speed vs sacrebleu"] = speed_ratio(times["lmcourse bleu"], times["sacrebleu"])
    result["rouge speed vs rouge_score"] = speed_ratio(times["lmcourse rouge"], times["rouge_score"])
    print(f"  ours / reference speed: BLEU {result['bleu speed vs sacrebleu']:.2f}x, "
          f"ROUGE {result['rouge speed vs rouge_score']:.2f}x")
    return result


def main(quick: bool = False, threads: int | None = None, data: Path | None = DEFAULT_DATA,
         parts: tuple[str, ...] = ("speed", "quality", "kv", "metrics")) -> dict:
    if threads is not None:
        torch.set_num_threads(threads)
    results = {}
    train_ids, val_ids, vocab, source = load_chars(data)
    if "speed" in parts:
        results["speed"] = bench_speed(vocab, batch_sampler(train_ids, val_ids), steps=10 if quick else 30,
                                       rounds=3 if quick else 7)
    if "quality" in parts:
        print(f"quality: tiny-shakespeare from {source}: {len(train_ids):,} train / {len(val_ids):,} val "
              f"characters, vocabulary {vocab}")
        results["quality"] = bench_quality(vocab, train_ids, val_ids, steps=200 if quick else STEPS)
    if "kv" in parts:
        results["kv"] = bench_kv_cache((64, 128) if quick else (128, 512, 1024), rounds=2 if quick else 3)
    if "metrics" in parts:
        results["metrics"] = bench_text_metrics(1_000 if quick else 10_000, rounds=2 if quick else 3)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the script runs")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--parts", default="speed,quality,kv,metrics")
    args = parser.parse_args()
    main(args.quick, args.threads, args.data, tuple(args.parts.split(",")))
