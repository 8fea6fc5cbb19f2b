"""The benchmark's models: causalnn's estimators and their peers, each behind one protocol.

Every model is a :class:`ModelSpec`: ``make(seed, device)`` returns an object with
``fit(data)`` (a replication Bunch, fitted on ``data.fit_index``) that returns a fitted
object exposing what its dataset kind is scored by: ``effect(X)`` (binary), optionally
``ate_interval(X)``, ``predict_outcome(X, treatment)`` (iv) or ``cause_effects()``
(multi-cause). Peers import their library in ``make`` (which the runner calls outside
the timed fit), not at import; one that is not installed is reported as "not installed"
in the table. CATENets draws from numpy's and torch's global generators: its fits run
with them seeded from the spec's seed, and the caller's states are restored.

Peer settings (the issue: do each peer justice)
------------------------------------------------
- EconML ``DRLearner``: with its defaults (unregularised propensity, propensities
  clipped at 1e-6) the doubly robust pseudo-outcomes explode on IHDP, whose treated arm
  is 19% of the rows and poorly overlapping. Here: ``model_propensity`` a cross-validated
  L2 logistic regression, ``min_propensity=0.05`` (inverse weights at most 20),
  ``model_regression`` gradient boosting, ``model_final`` a cross-validated lasso on the
  covariates, 3 cross-fitting folds. (A lasso final stage gives no intervals: no
  coverage for it.)
- EconML ``CausalForestDML``: ``discrete_treatment=True``, gradient-boosting nuisance
  models, 3 folds, ``n_jobs`` the torch threads of the work item (``--threads``; its
  default of every core would give the forest more cores than the neural models and
  make two workers fight over them), otherwise defaults. T- and X-learner: gradient-boosting regressors per
  arm (X-learner: logistic-regression propensity).
- CATENets ``TARNet`` / ``DragonNet`` (v0.2.4, torch): once with their defaults and once
  with ``batch_norm=False``: batch normalisation in the outcome heads costs TARNet about
  an order of magnitude in sqrt(PEHE) on IHDP. CATENets' CFR: its ``TARNet`` with
  ``penalty_disc=0.01`` (a linear MMD between the arms' representations) and
  ``batch_norm=False``, the "CFRNet_0.01" setting of benchmarks built on CATENets
  (its other settings: CATENets' defaults, as for the rows above).
- 2SLS for DeepIV: polynomial two-stage least squares (:func:`two_stage_least_squares`).
- Baselines for the multi-cause data: OLS of y on every cause (naive) and OLS adjusting
  for principal components of the causes.
"""
import contextlib
import importlib

import numpy as np

__all__ = ["ModelSpec", "MODELS", "two_stage_least_squares", "default_models"]


class ModelSpec:
    """A named model of the benchmark.

    Parameters
    ----------
    name : str
    make : callable ``(seed, device) -> fitter``
    kinds : tuple of str
        The dataset kinds it applies to.
    family : str
        ``"causalnn"`` or the peer library's name.
    requires : tuple of str
        Modules that must import for it to run.
    batched : bool
        Whether its replications can run as one ``fit_many`` (member axis).
    """

    def __init__(self, name, make, kinds, family, requires=(), batched=False):
        self.name, self.make, self.kinds = name, make, tuple(kinds)
        self.family, self.requires, self.batched = family, tuple(requires), batched

    def unavailable(self):
        """Why this model cannot run here (a missing import), or None."""
        for module in self.requires:
            try:
                with _global_rngs_kept():
                    importlib.import_module(module)
            except Exception as exc:  # ImportError, or a broken install
                return f"{module} not installed ({type(exc).__name__}: {exc})"
        return None


@contextlib.contextmanager
def _global_rngs_kept():
    """Give numpy's and Python's global generators back as they were: importing
    CATENets 0.2.4 runs ``np.random.seed(0)`` and ``random.seed(0)``, which would reset
    the caller's streams just by asking for a CATENets model."""
    import random
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


# ----------------------------------------------------------------------------- causalnn


class _Causalnn:
    """A causalnn estimator fitted on a replication's fit rows."""

    def __init__(self, estimator):
        self.estimator = estimator

    def fit(self, data):
        rows = data.fit_index
        if data.kind == "multi_cause":
            return self.estimator.fit(None, data.y, treatment=data.treatment)
        kwargs = {"instrument": data.instrument[rows]} if data.kind == "iv" else {}
        return self.estimator.fit(data.X[rows], data.y[rows],
                                  treatment=data.treatment[rows], **kwargs)

    def fit_many(self, replications):
        """All replications (sharing X, treatment and fit rows) as one batched fit."""
        first = replications[0]
        rows = first.fit_index
        Y = np.stack([r.y[rows] for r in replications])
        return self.estimator.fit_many(first.X[rows], Y, treatment=first.treatment[rows])


def _causalnn(factory):
    def make(seed, device):
        return _Causalnn(factory(seed, device))
    return make


def _tarnet(seed, device):
    from .. import TARNet
    return TARNet(random_state=seed, device=device)


def _cfr(ipm, alpha):
    def factory(seed, device):
        from .. import CFRNet
        return CFRNet(ipm=ipm, alpha=alpha, random_state=seed, device=device)
    return factory


def _dragonnet(targeted):
    def factory(seed, device):
        from .. import Dragonnet
        return Dragonnet(targeted_regularization=targeted, random_state=seed,
                         device=device)
    return factory


def _cevae(seed, device):
    from .. import CEVAE
    return CEVAE(random_state=seed, device=device)


def _deepiv(seed, device):
    from .. import DeepIV
    return DeepIV(random_state=seed, device=device)


def _deconfounder(seed, device):
    from .. import Deconfounder
    return Deconfounder(random_state=seed, device=device)


# ---------------------------------------------------------------------------- peers


class _BinaryPeer:
    """A peer fitted by ``fit(X, y, t)`` whose effect is ``effect_fn(model, X)``."""

    def __init__(self, build, fit, effect, interval=None):
        self.build, self._fit, self._effect, self._interval = build, fit, effect, interval

    def fit(self, data):
        rows = data.fit_index
        self.model_ = self._fit(self.build(data), data.X[rows], data.y[rows],
                                data.treatment[rows])
        return self

    def effect(self, X):
        return np.asarray(self._effect(self.model_, X), dtype=float).reshape(-1)

    def ate(self, X):
        return float(np.mean(self.effect(X)))

    def __getattr__(self, name):
        if name == "ate_interval" and self.__dict__.get("_interval") is not None:
            return lambda X: self._interval(self.model_, X)
        raise AttributeError(name)


def _gb(seed):
    from sklearn.ensemble import GradientBoostingRegressor
    return GradientBoostingRegressor(random_state=seed)


def _econml_fit(model, X, y, t):
    return model.fit(y, t, X=X)


def _econml_effect(model, X):
    return model.effect(X)


def _econml_interval(model, X):
    low, high = model.ate_interval(X, alpha=0.05)
    return float(np.squeeze(low)), float(np.squeeze(high))


def _econml(build, interval=False):
    def make(seed, device):
        # built (and EconML imported) here, outside the runner's timed fit
        model = build(seed)
        return _BinaryPeer(lambda data: model, _econml_fit, _econml_effect,
                           _econml_interval if interval else None)
    return make


def _work_item_threads():
    """The threads a peer may use: torch's in this work item, which ``run_unit`` sets
    to the run's ``threads`` (``--threads``), so a peer with its own thread pool uses
    as many cores as causalnn's estimators do."""
    import torch
    return torch.get_num_threads()


def _causal_forest(seed):
    from econml.dml import CausalForestDML
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.ensemble import GradientBoostingRegressor
    # EconML's default n_jobs=-1 grows the forest on every core whatever --threads says
    return CausalForestDML(model_y=GradientBoostingRegressor(random_state=seed),
                           model_t=GradientBoostingClassifier(random_state=seed),
                           discrete_treatment=True, cv=3, random_state=seed,
                           n_jobs=_work_item_threads())


def _dr_learner(seed):
    from econml.dr import DRLearner
    from sklearn.linear_model import LassoCV, LogisticRegressionCV
    return DRLearner(model_propensity=LogisticRegressionCV(max_iter=2000),
                     model_regression=_gb(seed), model_final=LassoCV(random_state=seed),
                     min_propensity=0.05, cv=3, random_state=seed)


def _t_learner(seed):
    from econml.metalearners import TLearner
    return TLearner(models=_gb(seed))


def _x_learner(seed):
    from econml.metalearners import XLearner
    from sklearn.linear_model import LogisticRegression
    return XLearner(models=_gb(seed), propensity_model=LogisticRegression(max_iter=2000))


@contextlib.contextmanager
def _global_rngs_seeded(seed):
    """Seed numpy's and torch's global random generators with ``seed`` inside the block
    and give the caller's states back after it.

    CATENets (0.2.4) passes its ``seed`` only to its validation split: weights are
    initialised from torch's global generator and batches shuffled with
    ``np.random.shuffle``, so without this a fit depends on what ran before it in the
    process (the grid's order in each worker)."""
    import torch
    seed = int(seed) % 2 ** 32   # np.random.seed's range
    # torch.manual_seed also seeds every CUDA generator: fork those too, when present
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)


class _GloballySeededPeer(_BinaryPeer):
    """A peer that draws from the global random generators (CATENets): its build and
    fit run with them seeded from ``seed`` (:func:`_global_rngs_seeded`)."""

    def __init__(self, seed, build, fit, effect, interval=None):
        super().__init__(build, fit, effect, interval)
        self.seed = seed

    def fit(self, data):
        with _global_rngs_seeded(self.seed):
            super().fit(data)
        # CATENets puts its networks on CUDA whenever there is one, whatever the
        # run's --device: report where they really ran
        parameters = getattr(self.model_, "parameters", None)
        first = next(iter(parameters()), None) if callable(parameters) else None
        if first is not None:
            self.device_ = first.device
        return self


def _catenets(class_name, batch_norm, penalty_disc=None):
    def build(seed, data):
        from catenets.models import torch as catenets_torch
        kwargs = {} if batch_norm is None else {"batch_norm": batch_norm}
        if penalty_disc is not None:
            kwargs["penalty_disc"] = penalty_disc
        return getattr(catenets_torch, class_name)(n_unit_in=data.X.shape[1], seed=seed,
                                                   **kwargs)

    def fit(model, X, y, t):
        return model.fit(X, y, t)

    def effect(model, X):
        import torch
        tau = model.predict(X)
        return tau.detach().cpu().numpy() if isinstance(tau, torch.Tensor) else tau

    def make(seed, device):
        # imported here, outside the runner's timed fit (the model needs the data's
        # width, so it is built in fit)
        importlib.import_module("catenets.models.torch")
        return _GloballySeededPeer(seed, lambda data: build(seed, data), fit, effect)
    return make


def two_stage_least_squares(data, grid, degree=3):
    """Polynomial 2SLS on the demand data: ``h(p, x) = phi(p, t, s)' beta``, instruments
    ``psi(z, t, s)``; returns h on ``grid`` (``X``, ``treatment``)."""
    from sklearn.preprocessing import PolynomialFeatures

    def design(first, X):
        s = X[:, 1:].argmax(axis=1) + 1.0
        return PolynomialFeatures(degree).fit_transform(
            np.column_stack([first, X[:, 0], s]))

    phi = design(data.treatment, data.X)
    psi = design(data.instrument[:, 0], data.X)
    phi_hat = psi @ np.linalg.lstsq(psi, phi, rcond=None)[0]   # first stage: E[phi | psi]
    beta = np.linalg.lstsq(phi_hat, data.y, rcond=None)[0]     # second stage
    return design(grid.treatment, grid.X) @ beta


class _TwoSLS:
    def fit(self, data):
        from sklearn.utils import Bunch
        rows = data.fit_index
        self.data_ = Bunch(X=data.X[rows], treatment=data.treatment[rows],
                           instrument=data.instrument[rows], y=data.y[rows])
        return self

    def predict_outcome(self, X, treatment):
        from sklearn.utils import Bunch
        return two_stage_least_squares(self.data_, Bunch(X=X, treatment=treatment))


def pc_adjusted_cause_effects(A, y, n_components, seed):
    """Each cause's coefficient in a least squares of ``y`` on that cause alone and the
    top ``n_components`` principal components of all causes (with an intercept): the
    customary PCA adjustment of genome-wide association studies (EIGENSTRAT; Price et
    al. 2006). One regression of ``y`` on every cause and the components is not
    identified, the components being linear functions of the causes: its answer is
    whatever the solver's singular-value cut-off makes of it.

    Computed by partialling the intercept and the components out of ``y`` and of each
    cause (Frisch-Waugh-Lovell): ``beta_j = <a_j~, y~> / <a_j~, a_j~>``.
    """
    from sklearn.decomposition import PCA
    A = np.asarray(A, dtype=float)
    y = np.asarray(y, dtype=float)
    scores = PCA(n_components, random_state=seed).fit_transform(A)
    basis, _ = np.linalg.qr(np.column_stack([np.ones(len(y)), scores]))
    y_rest = y - basis @ (basis.T @ y)
    A_rest = A - basis @ (basis.T @ A)
    return (A_rest.T @ y_rest) / np.einsum("ij,ij->j", A_rest, A_rest)


class _CauseOLS:
    """OLS of y on every cause (naive), or per cause adjusting for principal
    components (:func:`pc_adjusted_cause_effects`)."""

    def __init__(self, seed, n_components=0):
        self.seed, self.n_components = seed, n_components

    def fit(self, data):
        from sklearn.linear_model import LinearRegression
        A = np.asarray(data.treatment, dtype=float)
        if self.n_components:
            self.coef_ = pc_adjusted_cause_effects(A, data.y, self.n_components, self.seed)
        else:
            self.coef_ = LinearRegression().fit(A, data.y).coef_
        return self

    def cause_effects(self):
        return self.coef_


MODELS = {spec.name: spec for spec in [
    ModelSpec("TARNet", _causalnn(_tarnet), ["binary"], "causalnn", batched=True),
    ModelSpec("CFR-mmd_linear", _causalnn(_cfr("mmd_linear", 0.01)), ["binary"],
              "causalnn", batched=True),
    ModelSpec("CFR-wasserstein", _causalnn(_cfr("wasserstein", 0.1)), ["binary"],
              "causalnn", batched=True),
    ModelSpec("CFR-mmd_rbf", _causalnn(_cfr("mmd_rbf", 0.01)), ["binary"],
              "causalnn", batched=True),
    ModelSpec("Dragonnet", _causalnn(_dragonnet(False)), ["binary"], "causalnn",
              batched=True),
    ModelSpec("Dragonnet+treg", _causalnn(_dragonnet(True)), ["binary"], "causalnn",
              batched=True),
    ModelSpec("CEVAE", _causalnn(_cevae), ["binary"], "causalnn"),
    ModelSpec("DeepIV", _causalnn(_deepiv), ["iv"], "causalnn"),
    ModelSpec("Deconfounder", _causalnn(_deconfounder), ["multi_cause"], "causalnn"),
    ModelSpec("EconML CausalForestDML", _econml(_causal_forest, interval=True),
              ["binary"], "econml", requires=["econml"]),
    ModelSpec("EconML DRLearner", _econml(_dr_learner), ["binary"],
              "econml", requires=["econml"]),
    ModelSpec("EconML T-learner", _econml(_t_learner), ["binary"], "econml",
              requires=["econml"]),
    ModelSpec("EconML X-learner", _econml(_x_learner), ["binary"], "econml",
              requires=["econml"]),
    ModelSpec("CATENets TARNet", _catenets("TARNet", None), ["binary"], "catenets",
              requires=["catenets.models.torch"]),
    ModelSpec("CATENets TARNet (batch_norm=False)", _catenets("TARNet", False),
              ["binary"], "catenets", requires=["catenets.models.torch"]),
    ModelSpec("CATENets DragonNet", _catenets("DragonNet", None), ["binary"],
              "catenets", requires=["catenets.models.torch"]),
    ModelSpec("CATENets DragonNet (batch_norm=False)", _catenets("DragonNet", False),
              ["binary"], "catenets", requires=["catenets.models.torch"]),
    ModelSpec("CATENets CFR (mmd_linear 0.01, batch_norm=False)",
              _catenets("TARNet", False, penalty_disc=0.01), ["binary"], "catenets",
              requires=["catenets.models.torch"]),
    ModelSpec("2SLS (poly3)", lambda seed, device: _TwoSLS(), ["iv"], "baseline"),
    ModelSpec("OLS (naive)", lambda seed, device: _CauseOLS(seed), ["multi_cause"],
              "baseline"),
    ModelSpec("OLS per cause + 5 PCs", lambda seed, device: _CauseOLS(seed, 5),
              ["multi_cause"], "baseline"),
]}


def default_models(kinds):
    """Every model that applies to one of ``kinds``, causalnn's first."""
    return [name for name, spec in MODELS.items() if set(spec.kinds) & set(kinds)]
