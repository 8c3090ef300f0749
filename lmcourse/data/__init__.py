"""Text for language models: corpora, synthetic sources, tokenizers, batching, cleaning.

    from lmcourse.data import load_text, BPETokenizer, LMBatches

One module per idea: ``corpora`` (real text, downloaded, checksummed and
cached), ``shakespeare`` (the offline plays parsed into ``Speaker:`` dialogue),
``synthetic`` (text with an exactly known entropy rate), ``tokenizers``
(char, word, byte-level BPE), ``batching`` (splits and training windows),
``cleaning`` (normalisation, deduplication, contamination, quality, privacy),
``statistics`` (Zipf's law, lengths, character sets, mixture weights), and two
generated tasks for lesson 09: ``toy_translation`` (English and an invented
language) and ``toy_summaries`` (match reports with reference summaries).
"""
from lmcourse.data.batching import LMBatches, Splits, random_windows, sequential_windows, split
from lmcourse.data.corpora import Corpus, available_corpora, load_text
from lmcourse.data.synthetic import MarkovSource
from lmcourse.data.tokenizers import BPETokenizer, CharTokenizer, Tokenizer, WordTokenizer
from lmcourse.data import toy_summaries, toy_translation

__all__ = [
    "BPETokenizer", "CharTokenizer", "Corpus", "LMBatches", "MarkovSource", "Splits",
    "Tokenizer", "WordTokenizer", "available_corpora", "load_text", "random_windows",
    "sequential_windows", "split", "toy_summaries", "toy_translation",
]
