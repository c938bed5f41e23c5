"""Small dense NumPy references of the algorithms the native core implements.

Every coordinate is updated at every step here (zero gradient where a mini-batch has no entry),
which is what the native lazy updates must reproduce. Rows are visited in order (shuffle=False).
"""
import numpy as np


def dloss(z, y):
    return -y / (1.0 + np.exp(y * z))


def schedule_eta(schedule, learning_rate, alpha, k):
    """eta_k of the schedules (python/asyncopt/optim.py), k = 1, 2, ..."""
    return {"constant": learning_rate, "invsqrt": learning_rate / np.sqrt(k),
            "optimal": learning_rate / (1 + alpha * learning_rate * (k - 1))}[schedule]


def sparse_regularizer(X):
    """(dense X, has[i, j] = row i stores feature j, n / d_j) of the Hogwild! frequency-scaled L2."""
    n, d = X.shape
    Xd = X.toarray().astype(np.float64)
    has = np.zeros((n, d))
    for i in range(n):
        has[i, X.indices[X.indptr[i]:X.indptr[i + 1]]] = 1.0
    counts = has.sum(axis=0)
    return Xd, has, np.divide(n, counts, out=np.zeros(d), where=counts > 0)


def in_order_batches(n, batch_size, epochs):
    """The row arrays of ``epochs`` passes in order, in mini-batches of ``batch_size``."""
    return [np.arange(start, min(start + batch_size, n)) for _ in range(epochs) for start in range(0, n, batch_size)]


def binary_gradient(Xd, y, rows, read, w, fit_intercept, sample_weight, regularization, alpha, reg_scale, has):
    """The mean log-loss gradient of a mini-batch (intercept last) at the iterate ``read``, plus the
    sparse regulariser's share at ``w`` (the iterate the step applies to: the same one without a
    delay). sample_weight weights the losses, not the regulariser."""
    d = Xd.shape[1]
    z = Xd[rows] @ read[:d] + (read[d] if fit_intercept else 0.0)
    coef = dloss(z, y[rows]) / len(rows)
    if sample_weight is not None:
        coef = coef * sample_weight[rows]
    g = np.zeros(d + 1)
    g[:d] = coef @ Xd[rows]
    g[d] = coef.sum() if fit_intercept else 0.0
    if regularization == "sparse":
        g[:d] += alpha * reg_scale * has[rows].sum(axis=0) / len(rows) * w[:d]
    return g


def binary_scales(d, intercept_scale, regularization, eta, alpha):
    """(step scale, shrink rho) per coordinate of the binary model: the intercept's step times
    intercept_scale, never shrunk; the weights shrunk by 1 - eta alpha under exact or decoupled L2."""
    step = np.ones(d + 1)
    step[d] = intercept_scale
    rho = np.ones(d + 1)
    if regularization in ("exact", "decoupled"):
        rho[:d] = 1.0 - eta * alpha
    return step, rho


class DenseRule:
    """One update rule's dense statistics and step, as every reference here applies it: step(w, g,
    k, eta) returns rho w - scale (the rule's step), scale and rho arrays or scalars (the
    intercept's step scale, the exact-L2 / decoupled shrink)."""

    def __init__(self, shape, optimizer, *, beta1=0.9, beta2=0.999, eps=1e-8, bias_correction=False):
        if optimizer not in ("sgd", "adagrad", "rmsprop", "adam", "amsgrad"):
            raise ValueError(f"no dense reference of optimizer {optimizer!r}")
        self.optimizer, self.beta1, self.beta2, self.eps, self.bias_correction = (
            optimizer, beta1, beta2, eps, bias_correction)
        self.m, self.v, self.vhat, self.G = (np.zeros(shape) for _ in range(4))

    def step(self, w, g, k, eta, scale=1.0, rho=1.0):
        b1, b2, eps = self.beta1, self.beta2, self.eps
        if self.optimizer == "sgd":
            return rho * w - scale * eta * g
        if self.optimizer == "adagrad":
            self.G = self.G + g * g
            return rho * w - scale * eta * g / (np.sqrt(self.G) + eps)
        if self.optimizer == "rmsprop":
            self.G = b2 * self.G + (1 - b2) * g * g
            return rho * w - scale * eta * g / (np.sqrt(self.G) + eps)
        a = eta * (np.sqrt(1 - b2 ** k) / (1 - b1 ** k) if self.bias_correction else 1.0)
        self.m = b1 * self.m + (1 - b1) * g
        self.v = b2 * self.v + (1 - b2) * g * g
        self.vhat = np.maximum(self.vhat, self.v)
        return rho * w - scale * a * self.m / (np.sqrt(self.vhat if self.optimizer == "amsgrad" else self.v) + eps)


def logistic_reference(X, y, *, optimizer="sgd", learning_rate=0.1, schedule="constant", beta1=0.9, beta2=0.999,
                       eps=1e-8, bias_correction=False, alpha=0.0, regularization="none", batch_size=1, epochs=1,
                       fit_intercept=True, intercept_scale=1.0, batches=None, sample_weight=None):
    """Dense mini-batch SGD / AMSGrad / AdaGrad / Adam on mean log-loss + alpha/2 ||w||^2; returns (w, b).

    X: scipy CSR (its stored entries define which features a row 'contains' for the sparse
    regulariser), y in {-1, +1}. batches: the row arrays of the successive updates; by default
    ``epochs`` passes in order in mini-batches of ``batch_size``. sample_weight: per-row weights of
    the losses (their gradients), the sparse regulariser's share unweighted.
    """
    n, d = X.shape
    Xd, has, reg_scale = sparse_regularizer(X)
    w = np.zeros(d + 1)  # last = intercept
    rule = DenseRule(d + 1, optimizer, beta1=beta1, beta2=beta2, eps=eps, bias_correction=bias_correction)
    k = 0
    if batches is None:
        batches = in_order_batches(n, batch_size, epochs)
    for rows in batches:
        g = binary_gradient(Xd, y, rows, w, w, fit_intercept, sample_weight, regularization, alpha, reg_scale, has)
        k += 1
        eta = schedule_eta(schedule, learning_rate, alpha, k)
        w = rule.step(w, g, k, eta, *binary_scales(d, intercept_scale, regularization, eta, alpha))
        if not fit_intercept:
            w[d] = 0.0
    return w[:d], w[d]


def multiclass_reference(X, y, n_classes, *, loss="softmax", optimizer="sgd", learning_rate=0.1, schedule="constant",
                         beta1=0.9, beta2=0.999, eps=1e-8, bias_correction=False, alpha=0.0, regularization="none",
                         batch_size=1, epochs=1, fit_intercept=True, intercept_scale=1.0, sample_weight=None):
    """Dense mini-batch SGD / AMSGrad / AdaGrad / Adam on K-class logistic regression, the mean
    softmax cross-entropy (loss='softmax') or the sum of the K one-vs-rest log-losses ('ovr'), plus
    alpha/2 ||W||^2; every coordinate of every class steps at every update, as in
    logistic_reference. y: class indices 0..K-1. Returns (W of shape (K, d), b of shape (K,))."""
    n, d = X.shape
    K = n_classes
    Xd, has, reg_scale = sparse_regularizer(X)
    w = np.zeros((d + 1, K))  # the last row: the intercepts
    rule = DenseRule((d + 1, K), optimizer, beta1=beta1, beta2=beta2, eps=eps, bias_correction=bias_correction)
    onehot = np.eye(K)[y]
    k = 0
    for _ in range(epochs):
        for start in range(0, n, batch_size):
            rows = np.arange(start, min(start + batch_size, n))
            z = Xd[rows] @ w[:d] + (w[d] if fit_intercept else 0.0)
            if loss == "softmax":
                p = np.exp(z - z.max(axis=1, keepdims=True))
                p /= p.sum(axis=1, keepdims=True)
                coef = (p - onehot[rows]) / len(rows)
            else:
                s = 2 * onehot[rows] - 1
                coef = dloss(z, s) / len(rows)
            if sample_weight is not None:
                coef = coef * sample_weight[rows][:, None]
            g = np.zeros((d + 1, K))
            g[:d] = Xd[rows].T @ coef
            g[d] = coef.sum(axis=0) if fit_intercept else 0.0
            if regularization == "sparse":
                g[:d] += alpha * (reg_scale * has[rows].sum(axis=0) / len(rows))[:, None] * w[:d]
            k += 1
            eta = schedule_eta(schedule, learning_rate, alpha, k)
            step = np.ones((d + 1, 1))
            step[d] = intercept_scale
            rho = np.ones((d + 1, 1))
            if regularization in ("exact", "decoupled"):
                rho[:d] = 1.0 - eta * alpha
            w = rule.step(w, g, k, eta, step, rho)
            if not fit_intercept:
                w[d] = 0.0
    return w[:d].T, w[d]


def efficient_adam_reference(X, y, worker_batches, *, optimizer="adam", learning_rate=0.01, schedule="constant",
                             beta1=0.9, beta2=0.999, eps=1e-8, bias_correction=True, alpha=0.0,
                             regularization="none", intercept_scale=1.0):
    """Efficient-Adam with identity quantizers and worker moments, densely: every round each worker i
    takes the mean gradient of its next batch at the shared x, updates its own m_i, v_i (and vhat_i
    for AMSGrad) and forms delta_i = a_k m_i / (sqrt(v_i) + eps) (the intercept's times
    intercept_scale; 'decoupled' adds eta_k alpha x); x -= mean_i delta_i. This is "the mean of
    local Adam steps", not Adam on the mean gradient when there are several workers.
    worker_batches[i][k]: the rows of worker i's batch in round k. Returns (w, b)."""
    n, d = X.shape
    Xd = X.toarray().astype(np.float64)
    has = (Xd != 0).astype(np.float64)
    counts = has.sum(axis=0)
    reg_scale = np.divide(n, counts, out=np.zeros(d), where=counts > 0)
    N = len(worker_batches)
    x = np.zeros(d + 1)
    m, v, vhat = np.zeros((N, d + 1)), np.zeros((N, d + 1)), np.zeros((N, d + 1))
    for k in range(1, len(worker_batches[0]) + 1):
        eta = schedule_eta(schedule, learning_rate, alpha, k)
        a = eta * (np.sqrt(1 - beta2 ** k) / (1 - beta1 ** k) if bias_correction else 1.0)
        deltas = []
        for i in range(N):
            rows = worker_batches[i][k - 1]
            z = Xd[rows] @ x[:d] + x[d]
            coef = dloss(z, y[rows]) / len(rows)
            g = np.zeros(d + 1)
            g[:d] = coef @ Xd[rows]
            g[d] = coef.sum()
            if regularization == "sparse":
                g[:d] += alpha * reg_scale * has[rows].sum(axis=0) / len(rows) * x[:d]
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            vhat[i] = np.maximum(vhat[i], v[i])
            delta = a * m[i] / (np.sqrt(vhat[i] if optimizer == "amsgrad" else v[i]) + eps)
            delta[d] *= intercept_scale
            if regularization == "decoupled":
                delta[:d] += eta * alpha * x[:d]
            deltas.append(delta)
        x = x - np.mean(deltas, axis=0)
    return x[:d], x[d]


def rule_reference(w0, grads, *, optimizer="sgd", learning_rate=0.1, schedule="constant", beta1=0.9, beta2=0.999,
                   eps=1e-8, bias_correction=False, alpha=0.0, regularization="none"):
    """The dense iterates of one update rule from w0 (any shape) under a sequence of dense gradients
    (zero wherever a sparse step has no entry); a gradient may also be a callable of the current w.
    Yields w after every step (float64). regularization 'exact' (SGD) / 'decoupled' shrink every
    coordinate by rho_k = 1 - eta_k alpha at every step."""
    w = np.array(w0, dtype=np.float64)
    rule = DenseRule(w.shape, optimizer, beta1=beta1, beta2=beta2, eps=eps, bias_correction=bias_correction)
    for k, g in enumerate(grads, start=1):
        g = np.asarray(g(w) if callable(g) else g, dtype=np.float64)
        eta = schedule_eta(schedule, learning_rate, alpha, k)
        rho = 1.0 - eta * alpha if regularization in ("exact", "decoupled") else 1.0
        w = rule.step(w, g, k, eta, 1.0, rho)
        yield w


def delayed_reference(X, y, delays, *, optimizer="sgd", learning_rate=0.1, schedule="constant", beta1=0.9,
                      beta2=0.999, eps=1e-8, bias_correction=False, alpha=0.0, regularization="none", batch_size=1,
                      epochs=1, fit_intercept=True, intercept_scale=1.0, batches=None, picky_threshold=None,
                      delay_adaptive=None):
    """Dense delayed SGD / AMSGrad / AdaGrad / Adam (the delay simulator's algorithm); returns (w, b, applied).

    Update k (k = 1, 2, ...) computes its mini-batch's data gradient at the iterate x_{k-1-d_k} of
    d_k = min(delays[k-1], k-1) updates earlier and applies the rule's step to the current iterate
    x_{k-1} (the exact-L2 / decoupled shrink and the sparse regulariser's share act there, as in
    the native step). picky_threshold: the update is applied only if ||x_{k-1} - x_{k-1-d}|| (the
    whole vector, intercept included) is at most it; a dropped update leaves the iterate as it is
    and still counts as step k (Cohen et al. 2021, Alg. 1). delay_adaptive = c: update k's step is
    eta_k min(1, c / d_k) (Mishchenko et al. 2022). applied: one bool per update.
    """
    n, d = X.shape
    Xd, has, reg_scale = sparse_regularizer(X)
    if batches is None:
        batches = in_order_batches(n, batch_size, epochs)
    w = np.zeros(d + 1)
    rule = DenseRule(d + 1, optimizer, beta1=beta1, beta2=beta2, eps=eps, bias_correction=bias_correction)
    iterates = [w.copy()]  # x_0, x_1, ...
    applied = []
    for k, rows in enumerate(batches, start=1):
        delay = min(int(delays[k - 1]), k - 1)
        read = iterates[k - 1 - delay]
        g = binary_gradient(Xd, y, rows, read, w, fit_intercept, None, regularization, alpha, reg_scale, has)
        ok = picky_threshold is None or np.linalg.norm(w - read) <= picky_threshold
        applied.append(bool(ok))
        eta = schedule_eta(schedule, learning_rate, alpha, k)
        if delay_adaptive is not None and delay > delay_adaptive:
            eta = eta * (delay_adaptive / delay)
        if ok:
            w = rule.step(w, g, k, eta, *binary_scales(d, intercept_scale, regularization, eta, alpha))
            if not fit_intercept:
                w[d] = 0.0
        elif optimizer != "sgd":
            raise ValueError("a dropped update (Picky SGD) is defined for SGD only")
        iterates.append(w.copy())
    return w[:d], w[d], np.array(applied)
