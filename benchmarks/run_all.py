"""Run every benchmark and print its figures: `make bench`.

Each benchmark measures ours and the reference side by side in one run and
reports ratios: absolute times on a shared machine swing from run to run.
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_compress  # noqa: E402
import bench_distributed  # noqa: E402
import bench_gpt  # noqa: E402
import bench_lit  # noqa: E402
import bench_grader  # noqa: E402
import bench_memory  # noqa: E402
import bench_rnn  # noqa: E402
import bench_scaling  # noqa: E402
import bench_tokenizers  # noqa: E402
import bench_train  # noqa: E402

BENCHMARKS = {
    "tokenizers: our byte-level BPE vs Hugging Face tokenizers": bench_tokenizers.main,
    "training loop: lmcourse.train vs a bare PyTorch loop": bench_train.main,
    "recurrent models: LSTM loops, Python cell, Keras vs PyTorch, Shakespeare": bench_rnn.main,
    "the small GPT: training speed, quality at nanoGPT's CPU budget, KV cache, BLEU/ROUGE": bench_gpt.main,
    "the class grader: a hostile class graded in the sandbox vs executed plainly": lambda: bench_grader.main([]),
    "memory and compute (lesson 07): activation checkpointing, MFU, bf16 vs fp32": lambda: bench_memory.main([]),
    "data parallelism (lesson 07): 1 vs 2 DDP processes on gloo": lambda: bench_distributed.main([]),
    "compression (lesson 07b): pruning, int8, distillation: size, latency, perplexity": lambda: bench_compress.main([]),
    "scaling laws (lesson 08): the smoke sweep's wall time and fitted exponents": bench_scaling.main,
    "locked-image tuning (lesson 10): seconds per step of each setting, cached vs recomputed": lambda: bench_lit.main([]),
}

if __name__ == "__main__":
    for title, run in BENCHMARKS.items():
        print(f"\n=== {title} ===", flush=True)
        start = time.perf_counter()
        run()
        print(f"({time.perf_counter() - start:.0f} s)")
