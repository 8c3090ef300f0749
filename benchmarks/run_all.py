"""Run every benchmark and print its figures: `make bench`.

Each benchmark measures ours and the reference side by side in one run and
reports ratios: absolute times on a shared machine swing from run to run.
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_gpt  # noqa: E402
import bench_grader  # noqa: E402
import bench_rnn  # noqa: E402
import bench_tokenizers  # noqa: E402
import bench_train  # noqa: E402

BENCHMARKS = {
    "tokenizers: our byte-level BPE vs Hugging Face tokenizers": bench_tokenizers.main,
    "training loop: lmcourse.train vs a bare PyTorch loop": bench_train.main,
    "recurrent models: LSTM loops, Python cell, Keras vs PyTorch, Shakespeare": bench_rnn.main,
    "the small GPT: training speed, quality at nanoGPT's CPU budget, KV cache, BLEU/ROUGE": bench_gpt.main,
    "the class grader: a hostile class graded in the sandbox vs executed plainly": lambda: bench_grader.main([]),
}

if __name__ == "__main__":
    for title, run in BENCHMARKS.items():
        print(f"\n=== {title} ===", flush=True)
        start = time.perf_counter()
        run()
        print(f"({time.perf_counter() - start:.0f} s)")
