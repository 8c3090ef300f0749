"""Our pure-Python byte-level BPE against Hugging Face ``tokenizers`` (Rust).

Both are trained on the first 80% of each corpus at the same vocabulary size
and measured on the held-out 20%: training time, encoding throughput and
compression (bytes per token). Every timing is the median of a few repeats,
ours and HF's taken side by side in the same run.

    .venv/bin/python benchmarks/bench_tokenizers.py [--vocab-sizes 1000 4000] [--repeats 3]

``main()`` returns the figures as a dict, for notebooks and tests.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

from lmcourse.data.tokenizers import BPETokenizer, reference_bpe


def load_corpora() -> dict[str, str]:
    """The pydoc corpus (ships with CPython), and tiny-shakespeare when its loader works."""
    from pydoc_data.topics import topics

    corpora = {"pydoc": "".join(topics.values())}
    try:
        from lmcourse.data.corpora import load_text

        corpora["tiny_shakespeare"] = load_text("tiny_shakespeare").text
    except Exception as e:  # the loader is optional here: say why and go on with pydoc
        print(f"(tiny_shakespeare skipped: {type(e).__name__}: {e})")
    return corpora


def timed(fn, repeats: int):
    """(median seconds, last result) of ``repeats`` calls of ``fn``."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def encode_lines(tokenizer, lines):
    return [tokenizer.encode(line) for line in lines]


def bench(text: str, vocab_size: int, repeats: int = 3) -> dict:
    cut = int(0.8 * len(text))
    train, held_out = text[:cut], text[cut:]
    n_bytes = len(held_out.encode("utf-8"))

    ours_train_s, ours = timed(lambda: BPETokenizer.train(train, vocab_size), repeats)
    hf_train_s, hf = timed(lambda: reference_bpe(train, vocab_size), repeats)
    # A fresh tokenizer per repeat: our encoding cache starts empty each time.
    ours_enc_s, ours_ids = timed(lambda: BPETokenizer(ours.merges).encode(held_out), repeats)
    hf_enc_s, hf_ids = timed(lambda: hf.encode(held_out).ids, repeats)
    assert ours.decode(ours_ids) == held_out and hf.decode(hf_ids) == held_out
    # How HF is meant to be used: many short texts at once, in parallel threads.
    # (One multi-megabyte string, above, is its slow case.)
    lines = held_out.splitlines(keepends=True)
    ours_batch_s, _ = timed(lambda: encode_lines(BPETokenizer(ours.merges), lines), repeats)
    hf_batch_s, _ = timed(lambda: hf.encode_batch(lines), repeats)

    return {
        "train_chars": len(train),
        "held_out_bytes": n_bytes,
        "vocab_size": vocab_size,
        "ours_train_s": ours_train_s,
        "hf_train_s": hf_train_s,
        "ours_encode_MB_s": n_bytes / ours_enc_s / 1e6,
        "hf_encode_MB_s": n_bytes / hf_enc_s / 1e6,
        "ours_batch_MB_s": n_bytes / ours_batch_s / 1e6,
        "hf_batch_MB_s": n_bytes / hf_batch_s / 1e6,
        "ours_encode_tokens_s": len(ours_ids) / ours_enc_s,
        "hf_encode_tokens_s": len(hf_ids) / hf_enc_s,
        "ours_tokens": len(ours_ids),
        "hf_tokens": len(hf_ids),
        "ours_bytes_per_token": n_bytes / len(ours_ids),
        "hf_bytes_per_token": n_bytes / len(hf_ids),
        "train_time_ratio": ours_train_s / hf_train_s,
        "encode_speed_ratio": hf_enc_s / ours_enc_s,  # < 1: ours is slower
        "batch_encode_speed_ratio": hf_batch_s / ours_batch_s,
        "token_count_ratio": len(ours_ids) / len(hf_ids),
    }


def main(vocab_sizes=(1000, 4000), repeats: int = 3) -> dict:
    print(f"{os.cpu_count()} CPU cores; HF may use all of them, ours uses one. Median of {repeats} runs.")
    results = {}
    for corpus, text in load_corpora().items():
        for vocab_size in vocab_sizes:
            r = results[f"{corpus}/{vocab_size}"] = bench(text, vocab_size, repeats)
            print(
                f"\n{corpus}: train on {r['train_chars']:,} chars, vocab {vocab_size}, "
                f"held out {r['held_out_bytes']:,} bytes\n"
                f"  {'':6} {'train s':>8} {'enc MB/s':>9} {'enc tok/s':>10} {'lines MB/s':>10} {'tokens':>8} {'bytes/tok':>9}"
            )
            for who in ("ours", "hf"):
                print(
                    f"  {who:6} {r[who + '_train_s']:8.2f} {r[who + '_encode_MB_s']:9.2f} "
                    f"{r[who + '_encode_tokens_s']:10,.0f} {r[who + '_batch_MB_s']:10.2f} {r[who + '_tokens']:8,} "
                    f"{r[who + '_bytes_per_token']:9.3f}"
                )
            print(
                f"  ours/hf: training time x{r['train_time_ratio']:.1f}, "
                f"encoding speed x{r['encode_speed_ratio']:.2f} (one string), "
                f"x{r['batch_encode_speed_ratio']:.2f} (line by line; HF batched), "
                f"tokens x{r['token_count_ratio']:.4f}"
            )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab-sizes", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    main(tuple(args.vocab_sizes), args.repeats)
