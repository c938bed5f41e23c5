"""An embedding-bag logistic model in plain numpy, trained with asyncopt's lazy exact AMSGrad.

Each sample is a bag of ids; its score is c . (sum of the bag's rows of the table E). The model,
the loss and the gradient are numpy; asyncopt owns only the optimizer state and applies each
row-sparse step in C++ (GIL released), from two Python threads at once (Hogwild!).

    python examples/embedding_bag.py

prints the loss before and after training (a few seconds).
"""
import threading
import time

import numpy as np

import asyncopt

n_ids, dim, n_samples, bag, batch, epochs = 10_000, 16, 20_000, 8, 64, 3
rng = np.random.default_rng(0)
c = rng.normal(size=dim) / np.sqrt(dim)
bags = rng.integers(0, n_ids, size=(n_samples, bag))
z_true = rng.normal(size=(n_ids, dim))[bags].sum(axis=1) @ c
y = np.where(rng.random(n_samples) < 1 / (1 + np.exp(-z_true)), 1.0, -1.0)

E = np.zeros((n_ids, dim), dtype=np.float32)  # our array: asyncopt trains it in place
opt = asyncopt.AMSGrad(learning_rate=0.05, schedule="invsqrt", bias_correction=True).attach(E)


def loss():
    z = E[bags].sum(axis=1) @ c
    return float(np.mean(np.logaddexp(0.0, -y * z)))


def train(batches):
    for b in batches:
        ids, inverse = np.unique(bags[b], return_inverse=True)  # the distinct rows this batch reads
        opt.catch_up(ids)  # bring them to the current step (AMSGrad's idle rows keep drifting)
        z = E[bags[b]].sum(axis=1) @ c
        coef = -y[b] / (1 + np.exp(y[b] * z)) / len(b)  # d loss / d z
        grad = np.zeros((len(ids), dim))
        np.add.at(grad, inverse.reshape(bags[b].shape), coef[:, None, None] * c)
        opt.step(grad, rows=ids)  # one row-sparse AMSGrad step, in C++


print(f"loss before: {loss():.4f}")
order = [np.arange(s, min(s + batch, n_samples)) for s in range(0, n_samples, batch)] * epochs
start = time.perf_counter()
threads = [threading.Thread(target=train, args=(order[t::2],)) for t in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
opt.finish()  # every row to the last step: E is now exactly the dense AMSGrad iterate
print(f"loss after {opt.steps} steps on 2 threads: {loss():.4f} ({time.perf_counter() - start:.2f} s)")
