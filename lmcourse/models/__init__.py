"""The course's language models: n-grams now; RNN/LSTM/GRU and the GPT in later lessons."""
from lmcourse.models.ngram import NGramModel
from lmcourse.models.rnn import RecurrentLM

__all__ = ["NGramModel", "RecurrentLM"]
