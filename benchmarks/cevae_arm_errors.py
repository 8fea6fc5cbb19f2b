"""Where CEVAE's IHDP error comes from: per-arm RMSE of the potential-outcome means.

Fits CEVAE (the paper's configuration) and TARNet on one IHDP replication's 90% rows
(``random_state=900``) and prints, on the 10% test rows and on the fitted rows, the RMSE
of ``mu0`` and ``mu1`` against the true surfaces and the resulting sqrt(PEHE).

Run:  OMP_NUM_THREADS=1 python benchmarks/cevae_arm_errors.py [--replication 9]
"""
import argparse

import numpy as np
import torch

from causalnn import CEVAE, TARNet
from causalnn.datasets import load_ihdp


def rmse(a):
    return float(np.sqrt(np.mean(np.square(a))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replication", type=int, default=9)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    d = load_ihdp(args.replication)
    fit_rows = np.concatenate([d.train_index, d.valid_index])
    print(f"IHDP replication {args.replication}: model, rows, RMSE mu0, RMSE mu1, "
          f"sqrt(PEHE)")
    for est in (CEVAE(random_state=900), TARNet(random_state=900)):
        est.fit(d.X[fit_rows], d.y[fit_rows], treatment=d.treatment[fit_rows])
        for name, rows in (("test", d.test_index), ("fitted", fit_rows)):
            e0 = est.predict_outcome(d.X[rows], 0) - d.mu0[rows]
            e1 = est.predict_outcome(d.X[rows], 1) - d.mu1[rows]
            print(f"{type(est).__name__:<7s} {name:<7s} {rmse(e0):7.2f} {rmse(e1):7.2f} "
                  f"{rmse(e1 - e0):7.2f}")


if __name__ == "__main__":
    main()
