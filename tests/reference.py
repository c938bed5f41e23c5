"""Small dense NumPy references of the algorithms the native core implements.

Every coordinate is updated at every step here (zero gradient where a mini-batch has no entry),
which is what the native lazy updates must reproduce. Rows are visited in order (shuffle=False).
"""
import numpy as np


def dloss(z, y):
    return -y / (1.0 + np.exp(y * z))


def logistic_reference(X, y, *, optimizer="sgd", learning_rate=0.1, schedule="constant", beta1=0.9, beta2=0.999,
                       eps=1e-8, bias_correction=False, alpha=0.0, regularization="none", batch_size=1, epochs=1,
                       fit_intercept=True, intercept_scale=1.0, batches=None):
    """Dense mini-batch SGD / AMSGrad / AdaGrad / Adam on mean log-loss + alpha/2 ||w||^2; returns (w, b).

    X: scipy CSR (its stored entries define which features a row 'contains' for the sparse
    regulariser), y in {-1, +1}. batches: the row arrays of the successive updates; by default
    ``epochs`` passes in order in mini-batches of ``batch_size``.
    """
    n, d = X.shape
    Xd = X.toarray().astype(np.float64)
    has = np.zeros((n, d))
    for i in range(n):
        has[i, X.indices[X.indptr[i]:X.indptr[i + 1]]] = 1.0
    counts = has.sum(axis=0)
    reg_scale = np.divide(n, counts, out=np.zeros(d), where=counts > 0)
    w = np.zeros(d + 1)  # last = intercept
    m = np.zeros(d + 1)
    v = np.zeros(d + 1)
    vhat = np.zeros(d + 1)
    G = np.zeros(d + 1)  # AdaGrad's sum of squared gradients
    k = 0
    if batches is None:
        batches = [np.arange(start, min(start + batch_size, n)) for _ in range(epochs)
                   for start in range(0, n, batch_size)]
    for rows in batches:
        z = Xd[rows] @ w[:d] + (w[d] if fit_intercept else 0.0)
        coef = dloss(z, y[rows]) / len(rows)
        g = np.zeros(d + 1)
        g[:d] = coef @ Xd[rows]
        g[d] = coef.sum() if fit_intercept else 0.0
        if regularization == "sparse":
            g[:d] += alpha * reg_scale * has[rows].sum(axis=0) / len(rows) * w[:d]
        k += 1
        eta = {"constant": learning_rate, "invsqrt": learning_rate / np.sqrt(k),
               "optimal": learning_rate / (1 + alpha * learning_rate * (k - 1))}[schedule]
        step = np.ones(d + 1)
        step[d] = intercept_scale
        rho = np.ones(d + 1)
        if regularization in ("exact", "decoupled"):
            rho[:d] = 1.0 - eta * alpha
        if optimizer == "sgd":
            w = rho * w - step * eta * g
        elif optimizer == "adagrad":
            G = G + g * g
            w = rho * w - step * eta * g / (np.sqrt(G) + eps)
        else:
            a = eta * (np.sqrt(1 - beta2 ** k) / (1 - beta1 ** k) if bias_correction else 1.0)
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            vhat = np.maximum(vhat, v)
            w = rho * w - step * a * m / (np.sqrt(vhat if optimizer == "amsgrad" else v) + eps)
        if not fit_intercept:
            w[d] = 0.0
    return w[:d], w[d]
