"""Moving trained weights between a PyTorch recurrent LM and its Keras twin, both ways.

    from lmcourse.models.porting import torch_to_keras, keras_to_torch

    torch_to_keras(torch_model, keras_model)   # keras_model now computes the same logits
    keras_to_torch(keras_model, torch_model)   # and back

The PyTorch side is ``lmcourse.models.rnn.RecurrentLM`` (or any module with the
same parts: ``embedding`` an ``nn.Embedding``, ``rnn`` a fused ``nn.RNN`` /
``nn.LSTM`` / ``nn.GRU`` with ``bias=True``, ``head`` an ``nn.Linear``). The
Keras side is a model from ``lmcourse.models.keras_rnn.build_keras_lm``
(``Embedding``, ``SimpleRNN`` / ``LSTM`` / ``GRU`` layers, ``Dense``).

Both frameworks compute the same functions, but store the weights
differently. Four differences, all handled here:

1. **Transposed matrices.** PyTorch multiplies ``W x`` and stores, per layer,
   ``weight_ih (G*H, D)`` and ``weight_hh (G*H, H)``; Keras multiplies
   ``x W`` and stores ``kernel (D, G*H)`` and ``recurrent_kernel (H, G*H)``
   (``G`` gate blocks: 1 for the plain RNN, 4 for the LSTM, 3 for the GRU).
   Likewise ``nn.Linear.weight (V, H)`` is the transpose of ``Dense``'s
   ``kernel (H, V)``. Embedding tables are ``(V, D)`` in both.
2. **Gate order.** The LSTM's four blocks come in the same order in both:
   PyTorch's input, forget, cell (``g``), output = Keras's ``i, f, c, o``.
   The GRU's do *not*: PyTorch stacks reset, update, new (``r, z, n``),
   Keras stacks update, reset, candidate (``z, r, h``), so the first two
   blocks swap places.
3. **One bias or two.** PyTorch adds two biases, ``b_ih`` and ``b_hh``;
   Keras's ``SimpleRNN`` and ``LSTM`` add one. Inside those cells the biases
   are only ever added together, so Keras gets ``b_ih + b_hh``; on the way
   back the sum goes to ``b_ih`` and ``b_hh`` becomes zero (the same function,
   though not the same two numbers: the split is not recoverable, and not needed).
4. **The GRU's reset gate.** PyTorch computes the candidate as
   ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``: the reset gate multiplies
   the recurrent product *and its bias*, so the two biases can't be merged.
   Keras's GRU with ``reset_after=True`` (its default) does exactly this and
   keeps a ``(2, 3H)`` bias: row 0 the input bias, row 1 the recurrent bias.
   With ``reset_after=False`` (the original Cho et al., 2014 form, ``r``
   applied to ``h`` before the product) no weights reproduce PyTorch's GRU,
   so that model is refused.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lmcourse.runtime import setup_tensorflow

setup_tensorflow()  # quiet TensorFlow before Keras imports it
import keras  # noqa: E402

__all__ = ["torch_to_keras", "keras_to_torch"]

_KERAS_LAYER = {nn.RNN: keras.layers.SimpleRNN, nn.LSTM: keras.layers.LSTM,
                nn.GRU: keras.layers.GRU}
_GATES = {nn.RNN: 1, nn.LSTM: 4, nn.GRU: 3}


def torch_to_keras(torch_model: nn.Module, keras_model: keras.Model) -> keras.Model:
    """Copy every weight of ``torch_model`` into ``keras_model`` (in place); returns it.

    Afterwards both give the same logits for the same ids (up to float32
    rounding). Sizes, cell type and layer count must match, or a
    ``ValueError`` says which differs.
    """
    emb, rnns, dense = _check_pair(torch_model, keras_model)
    rnn = torch_model.rnn
    kind, H = type(rnn), rnn.hidden_size
    emb.embeddings.assign(_numpy(torch_model.embedding.weight))
    for layer, cell in enumerate(c.cell for c in rnns):
        w_ih = _numpy(getattr(rnn, f"weight_ih_l{layer}"))
        w_hh = _numpy(getattr(rnn, f"weight_hh_l{layer}"))
        b_ih = _numpy(getattr(rnn, f"bias_ih_l{layer}"))
        b_hh = _numpy(getattr(rnn, f"bias_hh_l{layer}"))
        if kind is nn.GRU:
            # Rows r, z, n -> columns z, r, h; the two biases stay apart (reset_after).
            cell.kernel.assign(_swap_first_two(w_ih, H).T)
            cell.recurrent_kernel.assign(_swap_first_two(w_hh, H).T)
            cell.bias.assign(np.stack([_swap_first_two(b_ih, H), _swap_first_two(b_hh, H)]))
        else:
            # RNN, LSTM: same gate order, transposed, and the two biases summed.
            cell.kernel.assign(w_ih.T)
            cell.recurrent_kernel.assign(w_hh.T)
            cell.bias.assign(b_ih + b_hh)
    dense.kernel.assign(_numpy(torch_model.head.weight).T)
    dense.bias.assign(_numpy(torch_model.head.bias))
    return keras_model


@torch.no_grad()
def keras_to_torch(keras_model: keras.Model, torch_model: nn.Module) -> nn.Module:
    """Copy every weight of ``keras_model`` into ``torch_model`` (in place); returns it.

    The inverse of ``torch_to_keras``. For the plain RNN and the LSTM, Keras
    has one bias where PyTorch has two: it goes to ``bias_ih`` and ``bias_hh``
    is set to zero, which computes the same function. Parameters keep their
    device and dtype.
    """
    emb, rnns, dense = _check_pair(torch_model, keras_model)
    rnn = torch_model.rnn
    kind, H = type(rnn), rnn.hidden_size
    _copy(torch_model.embedding.weight, emb.embeddings.numpy())
    for layer, cell in enumerate(c.cell for c in rnns):
        kernel, recurrent = cell.kernel.numpy(), cell.recurrent_kernel.numpy()
        bias = cell.bias.numpy()
        if kind is nn.GRU:
            # Columns z, r, h -> rows r, z, n (swapping the first two blocks undoes itself).
            _copy(getattr(rnn, f"weight_ih_l{layer}"), _swap_first_two(kernel.T, H))
            _copy(getattr(rnn, f"weight_hh_l{layer}"), _swap_first_two(recurrent.T, H))
            _copy(getattr(rnn, f"bias_ih_l{layer}"), _swap_first_two(bias[0], H))
            _copy(getattr(rnn, f"bias_hh_l{layer}"), _swap_first_two(bias[1], H))
        else:
            _copy(getattr(rnn, f"weight_ih_l{layer}"), kernel.T)
            _copy(getattr(rnn, f"weight_hh_l{layer}"), recurrent.T)
            _copy(getattr(rnn, f"bias_ih_l{layer}"), bias)
            _copy(getattr(rnn, f"bias_hh_l{layer}"), np.zeros_like(bias))
    _copy(torch_model.head.weight, dense.kernel.numpy().T)
    _copy(torch_model.head.bias, dense.bias.numpy())
    return torch_model


def _swap_first_two(blocks: np.ndarray, H: int) -> np.ndarray:
    """Swap the first two ``H``-sized blocks along axis 0: GRU ``r, z, n`` <-> ``z, r, h``."""
    return np.concatenate([blocks[H:2 * H], blocks[:H], blocks[2 * H:]], axis=0)


def _numpy(param: torch.Tensor) -> np.ndarray:
    return param.detach().cpu().float().numpy()


def _copy(param: torch.Tensor, value: np.ndarray) -> None:
    param.copy_(torch.from_numpy(np.ascontiguousarray(value)))  # copy_ converts dtype and device


def _check_pair(torch_model: nn.Module, keras_model: keras.Model):
    """The Keras model's (Embedding, [recurrent layers], Dense), after checking it matches."""
    for name, kind, what in (("embedding", nn.Embedding, "nn.Embedding"),
                             ("rnn", (nn.RNN, nn.LSTM, nn.GRU), "nn.RNN, nn.LSTM or nn.GRU"),
                             ("head", nn.Linear, "nn.Linear")):
        part = getattr(torch_model, name, None)
        if not isinstance(part, kind):
            raise TypeError(f"torch_model.{name} must be an {what}, as in "
                            f"lmcourse.models.rnn.RecurrentLM; got "
                            f"{'nothing' if part is None else type(part).__name__}")
    rnn = torch_model.rnn
    if rnn.bidirectional or getattr(rnn, "proj_size", 0) or not rnn.bias:
        raise ValueError("only unidirectional recurrent layers with bias=True and no proj_size "
                         "can be ported")
    if isinstance(rnn, nn.RNN) and rnn.nonlinearity != "tanh":
        raise ValueError(f"Keras's SimpleRNN uses tanh; this nn.RNN uses {rnn.nonlinearity!r}")

    embs = [l for l in keras_model.layers if isinstance(l, keras.layers.Embedding)]
    rnns = [l for l in keras_model.layers if isinstance(l, keras.layers.RNN)]
    denses = [l for l in keras_model.layers if isinstance(l, keras.layers.Dense)]
    if len(embs) != 1 or len(denses) != 1 or not rnns:
        raise ValueError("keras_model must have one Embedding, recurrent layers and one Dense "
                         "(a model from lmcourse.models.keras_rnn.build_keras_lm)")
    if not keras_model.built:
        raise ValueError("keras_model has no weights yet: call it on a batch of ids first")
    emb, dense = embs[0], denses[0]

    expected = _KERAS_LAYER[type(rnn)]
    wrong = [l.name for l in rnns if type(l) is not expected]
    if wrong:
        raise ValueError(f"the PyTorch model uses {type(rnn).__name__}, so every Keras recurrent "
                         f"layer must be {expected.__name__}; these are not: {wrong}")
    if len(rnns) != rnn.num_layers:
        raise ValueError(f"layer count differs: PyTorch has {rnn.num_layers} recurrent layers, "
                         f"Keras has {len(rnns)}")
    for l in rnns:
        if not l.cell.use_bias:
            raise ValueError(f"Keras layer {l.name!r} has use_bias=False; PyTorch's has biases")
        if l.go_backwards or l.cell.activation is not keras.activations.tanh:
            raise ValueError(f"Keras layer {l.name!r} must run forwards with tanh to match PyTorch")
        if isinstance(l, keras.layers.GRU) and not l.cell.reset_after:
            raise ValueError(f"Keras GRU {l.name!r} has reset_after=False, a different formula "
                             f"from PyTorch's GRU: build it with reset_after=True (the default)")

    # Every Keras weight must have the shape its PyTorch counterpart implies.
    G, H, D = _GATES[type(rnn)], rnn.hidden_size, rnn.input_size
    V, E = torch_model.embedding.weight.shape
    shapes = [("embedding", emb.embeddings, (V, E)), ("head kernel", dense.kernel, (H, V)),
              ("head bias", dense.bias, (V,))]
    if E != D:
        raise ValueError(f"torch_model.embedding has {E} dimensions but torch_model.rnn expects "
                         f"input_size {D}")
    for i, l in enumerate(rnns):
        bias_shape = (2, G * H) if isinstance(l, keras.layers.GRU) else (G * H,)
        shapes += [(f"{l.name} kernel", l.cell.kernel, (D if i == 0 else H, G * H)),
                   (f"{l.name} recurrent_kernel", l.cell.recurrent_kernel, (H, G * H)),
                   (f"{l.name} bias", l.cell.bias, bias_shape)]
    for what, variable, shape in shapes:
        if tuple(variable.shape) != shape:
            raise ValueError(f"size mismatch at {what}: the PyTorch model (vocab {V}, n_embd {E}, "
                             f"hidden {H}) needs shape {shape}, the Keras model has "
                             f"{tuple(variable.shape)}")
    return emb, rnns, dense
