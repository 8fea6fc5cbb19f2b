"""Docstring fragments shared by estimators, written once.

A class docstring names a fragment as ``%(name)s`` on a line of its own (indented as the
section it sits in); :func:`fill_doc` substitutes it.
"""
import textwrap

__all__ = ["fill_doc"]

FRAGMENTS = {
    "representation_parameters": """\
representation_layers : tuple of int, default=(200, 200, 200)
    Hidden widths of the shared representation ``Phi``.
activation : {"elu", "relu", "tanh", "selu", "gelu"}, default="elu"
    Activation after every hidden layer.""",
    "training_parameters": """\
learning_rate : float, default=1e-3
    Step size of the optimizer.
optimizer : {"adam", "adamw", "sgd"}, default="adam"
    ``"adam"`` adds ``weight_decay`` to the gradients as an L2 penalty, ``"adamw"``
    decays the weights directly, ``"sgd"`` uses momentum 0.9.
max_epochs : int, default=300
    Upper bound on the passes over the training rows.
validation_fraction : float, default=0.3
    Held-out fraction (stratified by treatment) for early stopping; 0.3 of the
    training rows gives the 63/27 train/validation split of the IHDP protocol.
    0 monitors the training loss instead.
outcome : {"auto", "continuous", "binary"}, default="auto"
    ``"auto"`` treats y in {0, 1} as binary (cross-entropy, effects as differences of
    probabilities), anything else as continuous (squared error on the standardised
    outcome, effects in the units of y).
treatment_col : str or None, default=None
    Name of the DataFrame column of ``X`` that holds the treatment, for sklearn tools
    that only pass ``(X, y)``; the column is not used as a covariate.
random_state : int, RandomState or None, default=None
    Seeds weight initialisation, the validation split and the batch order; a fixed
    value makes CPU fits bit-for-bit repeatable.
device : str or torch.device, default="auto"
    ``"auto"`` uses CUDA when available, else the CPU.
verbose : int, default=0
    1 shows a progress line on stderr, 2 one line per epoch.""",
    "fitted_attributes": """\
history_ : list of dict
    One record per epoch: ``train_loss``, ``valid_loss`` and every named loss term.
best_epoch_ : int
    Epoch whose weights were restored by early stopping.
n_iter_ : int
    Epochs run.
n_features_in_ : int
    Number of covariates seen in ``fit``.
feature_names_in_ : ndarray of str
    Covariate names, only when ``X`` was a DataFrame.
outcome_type_ : {"continuous", "binary"}
    The outcome type used.
y_mean_, y_scale_ : float
    Standardisation of a continuous outcome (0 and 1 for a binary one).
device_ : torch.device
    Device the model was trained on.""",
}


def fill_doc(cls):
    """Class decorator: replace each ``%(name)s`` line with the indented fragment."""
    lines = []
    for line in cls.__doc__.splitlines():
        key = line.strip()
        if key.startswith("%(") and key.endswith(")s"):
            indent = line[:len(line) - len(line.lstrip())]
            lines.append(textwrap.indent(FRAGMENTS[key[2:-2]], indent))
        else:
            lines.append(line)
    cls.__doc__ = "\n".join(lines)
    return cls
