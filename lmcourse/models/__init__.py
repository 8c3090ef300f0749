"""The course's language models: n-grams, RNN/LSTM/GRU and a small GPT.

The Keras models live in ``lmcourse.models.keras_rnn`` (import it explicitly:
it loads TensorFlow) and weight porting in ``lmcourse.models.porting``.
"""
from lmcourse.models.clip import ContrastiveModel, ImageTower, TextTower
from lmcourse.models.gpt import GPT, GPTConfig
from lmcourse.models.ngram import NGramModel
from lmcourse.models.rnn import RecurrentLM

__all__ = ["ContrastiveModel", "GPT", "GPTConfig", "ImageTower", "NGramModel", "RecurrentLM", "TextTower"]
