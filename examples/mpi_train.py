"""Distributed logistic regression on a cluster: every rank runs this script (srun or mpiexec).

    srun python examples/mpi_train.py TRAIN.libsvm.xz TEST.libsvm.xz       # under Slurm (slurm_job.sh)
    mpiexec -n 4 python examples/mpi_train.py TRAIN TEST                   # elsewhere

Rank 0 serves the model, the other ranks are DPSGD workers, each running lock-free Hogwild! over
its own OMP_NUM_THREADS threads (the worker x thread hierarchy of Mohamad et al. 2022). Every rank
loads the whole file and trains on its share of the rows (sharding='split', checked by checksum at
start-up). Rank 0 prints the history and the per-worker report; the workers print their counters.
Without arguments it trains on a built-in synthetic problem.
"""
import os
import sys

import asyncopt
from asyncopt.datasets import load_libsvm, make_sparse_classification


def data():
    if len(sys.argv) >= 3:
        X, y = load_libsvm(sys.argv[1])
        Xt, yt = load_libsvm(sys.argv[2], n_features=X.shape[1])
        return X, y, Xt, yt
    X, y = make_sparse_classification(n_samples=120_000, n_features=2 ** 18, random_state=0)
    return X[:100_000], y[:100_000], X[100_000:], y[100_000:]


def main():
    X, y, Xt, yt = data()
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    # the estimator's defaults (SGD, Bottou's 1/t schedule, the stopping rule) but the plateau drops, which
    # DPSGD's worker-side steps do not take, and the backend with its worker x thread layout
    clf = asyncopt.LogisticRegression(n_threads=threads, plateau_drops=0, backend="mpi",
                                      mpi={"method": "dpsgd", "local_updates": 16, "timeout": 120}, verbose=2)
    clf.fit(X, y, eval_set=(Xt, yt))
    if clf.mpi_rank_ == 0:
        print(f"test log-loss {clf.log_loss(Xt, yt):.4f}, accuracy {clf.score(Xt, yt):.4f}")
        for rank, w in sorted(clf.mpi_stats_["workers"].items()):
            print(f"worker {rank}: {w['applied']} pushes applied, {w['rows']} rows, alive {w['alive']}")
    else:
        print(f"worker rank {clf.mpi_rank_} done: {clf.mpi_stats_}", file=sys.stderr)


if __name__ == "__main__":
    main()
