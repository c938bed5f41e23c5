"""A NumPy reference of the one-thread advantage actor-critic (csrc/asyncopt/threads/actor_critic.hpp
with n_threads=1), written from the equations, not from the C++: the network's forward and backward
passes in batch matrix form, n-step returns with bootstrapping, the A2C loss's gradient, global-norm
clipping and the update rules. It steps gymnasium's own CartPole (its dynamics, from states this
reference draws) and consumes random numbers exactly as the native thread does:

- thread 0's stream is xoshiro256** seeded by SplitMix64 from (random_state, stream 0)
  (csrc/asyncopt/core/rng.hpp); a uniform in [lo, hi) is lo + (hi - lo) * (next >> 11) 2^-53;
- at the start each environment is reset in order (4 uniforms in [-0.05, 0.05) each);
- per step and environment: one uniform for the action (the first k whose cumulative probability
  exceeds it), the step, and on an episode's end a reset.
"""
from __future__ import annotations

import math

import numpy as np

MASK = (1 << 64) - 1


class Xoshiro:
    def __init__(self, seed, stream):
        x = seed ^ ((0xD1B54A32D192ED03 * (stream + 1)) & MASK)
        self.s = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & MASK
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
            self.s.append(z ^ (z >> 31))

    @staticmethod
    def _rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & MASK

    def next(self):
        s = self.s
        result = (self._rotl((s[1] * 5) & MASK, 7) * 9) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def uniform(self, lo, hi):
        return lo + (hi - lo) * ((self.next() >> 11) * 2.0 ** -53)


def unpack(theta, obs_dim, hidden, n_actions):
    """The flat vector as [(W, b) per trunk layer], (W_pi, b_pi), (W_v, b_v)."""
    layers, off, fan_in = [], 0, obs_dim
    for h in [*hidden, n_actions, 1]:
        W = theta[off:off + h * fan_in].reshape(h, fan_in)
        off += h * fan_in
        b = theta[off:off + h]
        off += h
        layers.append((W, b))
        if len(layers) <= len(hidden):
            fan_in = h
    assert off == theta.size
    return layers[:len(hidden)], layers[len(hidden)], layers[len(hidden) + 1]


def forward(theta, X, obs_dim, hidden, n_actions):
    """(trunk outputs per layer, log pi (B x A), V (B)) for observations X (B x obs_dim)."""
    trunk, (Wp, bp), (Wv, bv) = unpack(theta, obs_dim, hidden, n_actions)
    hs = [np.asarray(X, dtype=np.float64)]
    for W, b in trunk:
        hs.append(np.tanh(hs[-1] @ W.T + b))
    z = hs[-1] @ Wp.T + bp
    m = z.max(axis=1, keepdims=True)
    logp = z - (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))
    v = (hs[-1] @ Wv.T + bv)[:, 0]
    return hs, logp, v


def backward(theta, hs, dz, dv, obs_dim, hidden, n_actions):
    """Gradient of sum_i dz_i . logits_i + dv_i V_i, by the chain rule in matrix form."""
    trunk, (Wp, bp), (Wv, bv) = unpack(theta, obs_dim, hidden, n_actions)
    grads = []
    top = hs[-1]
    head = [dz.T @ top, dz.sum(axis=0), dv[None, :] @ top, np.array([dv.sum()])]
    dh = dz @ Wp + dv[:, None] * Wv
    for l in range(len(trunk) - 1, -1, -1):
        W, _ = trunk[l]
        dpre = dh * (1.0 - hs[l + 1] ** 2)
        grads.append((dpre.T @ hs[l], dpre.sum(axis=0)))
        dh = dpre @ W
    flat = []
    for gW, gb in reversed(grads):
        flat += [gW.ravel(), gb]
    flat += [h.ravel() for h in head]
    return np.concatenate(flat)


def n_step_returns(rewards, terminated, truncated, truncation_value, last_value, gamma):
    T, E = rewards.shape
    G = np.array(last_value, dtype=np.float64)
    out = np.zeros((T, E))
    for t in range(T - 1, -1, -1):
        for e in range(E):
            if terminated[t, e]:
                G[e] = rewards[t, e]
            elif truncated[t, e]:
                G[e] = rewards[t, e] + gamma * truncation_value[t, e]
            else:
                G[e] = rewards[t, e] + gamma * G[e]
            out[t, e] = G[e]
    return out


def a2c_gradient(theta, hs, logp, v, actions, returns, value_coef, entropy_coef, max_grad_norm, obs_dim, hidden,
                 n_actions):
    B = v.size
    adv = returns - v
    p = np.exp(logp)
    H = -(p * logp).sum(axis=1)
    onehot = np.eye(n_actions)[actions]
    dz = (-adv[:, None] * (onehot - p) + entropy_coef * p * (logp + H[:, None])) / B
    dv = 2.0 * value_coef * (v - returns) / B
    g = backward(theta, hs, dz, dv, obs_dim, hidden, n_actions)
    norm = math.sqrt(float(g @ g))
    if max_grad_norm > 0:
        coef = max_grad_norm / (norm + 1e-6)
        if coef < 1.0:
            g = g * coef
    return g


class Rule:
    """The dense update rules with constant steps (csrc/asyncopt/optim/*.hpp equations)."""

    def __init__(self, name, n, learning_rate, beta1=0.9, beta2=0.999, eps=1e-8):
        self.name, self.lr, self.b1, self.b2, self.eps = name, learning_rate, beta1, beta2, eps
        self.m, self.v, self.vhat, self.G = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)

    def step(self, w, g):
        if self.name == "sgd":
            return w - self.lr * g
        if self.name == "rmsprop":
            self.G = self.b2 * self.G + (1 - self.b2) * g * g
            return w - self.lr * g / (np.sqrt(self.G) + self.eps)
        if self.name == "amsgrad":
            self.m = self.b1 * self.m + (1 - self.b1) * g
            self.v = self.b2 * self.v + (1 - self.b2) * g * g
            self.vhat = np.maximum(self.vhat, self.v)
            return w - self.lr * self.m / (np.sqrt(self.vhat) + self.eps)
        raise ValueError(self.name)


def reference_a2c_cartpole(theta0, n_updates, *, seed, n_steps, n_envs, rule, gamma=0.99, value_coef=0.5,
                           entropy_coef=0.0, max_grad_norm=0.5, hidden=(64, 64)):
    """theta after n_updates one-thread updates on CartPole-v1, and the episodes' returns."""
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv

    D, A, T, E = 4, 2, n_steps, n_envs
    rng = Xoshiro(seed, 0)
    envs = [CartPoleEnv() for _ in range(E)]
    elapsed = [0] * E
    obs = np.zeros((E, D), dtype=np.float32)

    def reset(e):
        envs[e].reset()  # clears gymnasium's episode bookkeeping; the state comes from our stream
        envs[e].state = np.array([rng.uniform(-0.05, 0.05) for _ in range(4)])
        elapsed[e] = 0
        obs[e] = np.asarray(envs[e].state, dtype=np.float32)

    for e in range(E):
        reset(e)
    theta = np.array(theta0, dtype=np.float64)
    ep_ret, returns_log = np.zeros(E), []
    for _ in range(n_updates):
        O = np.zeros((T, E, D), dtype=np.float32)
        acts = np.zeros((T, E), dtype=np.int64)
        R = np.zeros((T, E))
        term = np.zeros((T, E), dtype=bool)
        trunc = np.zeros((T, E), dtype=bool)
        boot = np.zeros((T, E))
        for t in range(T):
            for e in range(E):
                O[t, e] = obs[e]
                _, logp, _ = forward(theta, obs[e:e + 1], D, hidden, A)
                u, c, a = rng.uniform(0.0, 1.0), 0.0, A - 1
                for k in range(A - 1):
                    c += math.exp(logp[0, k])
                    if u < c:
                        a = k
                        break
                o, r, terminated, _, _ = envs[e].step(a)
                elapsed[e] += 1
                truncated = elapsed[e] >= 500
                acts[t, e], R[t, e], term[t, e], trunc[t, e] = a, r, terminated, truncated
                obs[e] = o
                ep_ret[e] += r
                if terminated or truncated:
                    if not terminated:
                        boot[t, e] = forward(theta, obs[e:e + 1], D, hidden, A)[2][0]
                    returns_log.append(ep_ret[e])
                    ep_ret[e] = 0.0
                    reset(e)
        last_v = forward(theta, obs, D, hidden, A)[2]
        G = n_step_returns(R, term, trunc, boot, last_v, gamma)
        hs, logp, v = forward(theta, O.reshape(T * E, D), D, hidden, A)
        g = a2c_gradient(theta, hs, logp, v, acts.ravel(), G.ravel(), value_coef, entropy_coef, max_grad_norm, D,
                         hidden, A)
        theta = rule.step(theta, g)
    return theta, returns_log
