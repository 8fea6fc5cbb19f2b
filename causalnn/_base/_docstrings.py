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
    "member_parameters": """\
n_members : int, default=1
    Networks trained as one batched computation (an ensemble): each has its own initial
    weights, validation loss, early stopping and best weights, and effects are the
    members' mean (``effect(X, members=True)`` gives each member's). On IHDP, 5 members
    lowered TARNet's 10-file mean out-of-sample sqrt(PEHE) from 1.06 to 0.92 (mean of
    four seed offsets) and 10 members halved the ATE's seed-to-seed spread, but on a
    2-core CPU they cost about linearly more time, hence the default of 1; on a GPU they
    run as one batched computation (``benchmarks/results/members_cpu.md``,
    ``ihdp_seeds_cpu.md``).
bootstrap : bool, default=False
    Train each member on its own bootstrap resample of its training rows, drawn
    within each treatment arm (each arm keeps its size): the members' spread then
    reflects sampling variation.
member_validation : {"shared", "own"}, default="shared"
    ``"shared"``: all members hold out the same validation rows. ``"own"``: each member
    holds out its own stratified split, so the ensemble learns from every row and no
    unlucky split is shared by all members (an epoch costs about
    ``1 / (1 - validation_fraction)`` times as much). On IHDP, 5 TARNet members scored
    0.74 with their own splits against 0.92 with a shared one (mean over four seed
    offsets); CFR-Wasserstein did not gain (see ``docs/index.md``).
scale_features : bool, default=True
    Standardise the non-binary columns of ``X`` inside the estimator (0/1 columns are
    left as they are). The small-weight initialisation assumes unit-scale inputs;
    effects and inputs stay in the user's units.
precision : {"float32", "bfloat16"}, default="float32"
    ``"bfloat16"`` trains under bfloat16 autocast (mixed precision; for large tables
    on GPUs with bfloat16 tensor cores).
compile : bool or "cuda-graph", default=False
    ``True``: compile the forward pass and loss with ``torch.compile`` (CUDA graphs of
    them on a GPU); compilation costs tens of seconds once per fit, so for long fits on
    large tables. ``"cuda-graph"``: on a GPU, capture each whole training step (batch,
    forward, backward, Adam step) as one CUDA graph after a few eager steps and replay
    it, without compilation: for small batches, where launching kernels one by one
    leaves the GPU waiting on the host. On a CPU it warns and trains as usual. With
    either, members that stop keep training alongside (``n_members``).""",
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
    One record per epoch: ``train_loss``, ``valid_loss`` and every named loss term
    (``train_<term>``, ``valid_<term>``); with members, their mean, and each member's
    value in ``train_member_<term>`` / ``valid_member_<term>`` (lists, one per member;
    TARNet, CFR and Dragonnet take a member that has stopped out of the batched fit,
    so its values are NaN from then on and the means are over the others).
best_epoch_ : int or ndarray of shape (n_members_,)
    Epoch whose weights were restored by early stopping (one per member).
n_iter_ : int
    Epochs run.
n_features_in_ : int
    Number of covariates seen in ``fit``.
n_members_ : int
    Members of the fitted module (``module_`` holds them stacked).
X_offset_, X_scale_ : ndarray of shape (n_features_in_,)
    Feature scaling applied before the network: mean and standard deviation of each
    column; a column constant in training is centred on its value with scale 1; 0 and
    1 for binary columns (and for every column with ``scale_features=False``, where
    the estimator has that parameter).
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
