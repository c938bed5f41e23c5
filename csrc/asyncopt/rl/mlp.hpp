// The actor-critic network: a dense MLP with ONE shared tanh trunk and two linear heads, policy
// logits (n_actions) and the state value V (1), in double precision.
//
// Why a shared trunk: it halves the arithmetic of every step (the forward pass runs once per
// environment step and dominates the per-step cost), and with the value loss weighted by c_v (0.5)
// it learns the classic-control tasks as well as two separate trunks do in the A2C baselines'
// experience; A3C (Mnih et al. 2016) also shares all but the output layers. Double precision: the
// model is ~5k parameters, so the arithmetic, not memory, is the cost, and double lets the one-thread
// run be held to a NumPy reference to 1e-6 over a thousand updates (tests/reference_rl.py).
//
// The parameters are one flat vector theta, layer by layer, each as W (out x in, row-major) then b:
//   trunk layer l: W_l (H_l x H_{l-1}), b_l (H_l)      with H_0 = obs_dim
//   policy head:   W_pi (A x H_L), b_pi (A)
//   value head:    W_v (1 x H_L), b_v (1)
// the order python/asyncopt/rl.py's initialisation and the NumPy reference use.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace asyncopt::rl {

class Mlp {
public:
    Mlp() = default;
    Mlp(int obs_dim, std::vector<int> hidden, int n_actions) : obs_dim_(obs_dim), hidden_(std::move(hidden)), n_actions_(n_actions) {
        if (obs_dim < 1 || n_actions < 2) throw std::invalid_argument("Mlp: obs_dim >= 1 and n_actions >= 2 needed");
        if (hidden_.empty()) throw std::invalid_argument("Mlp: at least one hidden layer");
        int in = obs_dim;
        int64_t off = 0;
        for (int h : hidden_) {
            if (h < 1) throw std::invalid_argument("Mlp: hidden sizes must be >= 1, got " + std::to_string(h));
            layers_.push_back({in, h, off, off + static_cast<int64_t>(h) * in});
            off += static_cast<int64_t>(h) * (in + 1);
            in = h;
        }
        policy_ = {in, n_actions, off, off + static_cast<int64_t>(n_actions) * in};
        off += static_cast<int64_t>(n_actions) * (in + 1);
        value_ = {in, 1, off, off + in};
        off += in + 1;
        n_params_ = off;
        act_size_ = 0;
        for (int h : hidden_) act_size_ += h;
        act_size_ += n_actions + 1;  // the log-probabilities, then V
    }

    int obs_dim() const noexcept { return obs_dim_; }
    int n_actions() const noexcept { return n_actions_; }
    const std::vector<int>& hidden() const noexcept { return hidden_; }
    int64_t n_params() const noexcept { return n_params_; }
    // Doubles per sample that forward() records for backward(): every trunk output, the
    // probabilities and V.
    int64_t activation_size() const noexcept { return act_size_; }
    int64_t max_width() const noexcept {
        int64_t w = obs_dim_;
        for (int h : hidden_) w = std::max<int64_t>(w, h);
        return std::max<int64_t>(w, n_actions_);
    }

    // Forward pass of one observation: act receives the trunk outputs, log pi = log_softmax(logits)
    // and V (activation_size() doubles). Returns V. Log-probabilities rather than probabilities: the
    // loss needs log pi, and a probability that underflows to 0 would make it -inf (pi = exp(log pi)
    // is exact enough where it is needed). The log-softmax subtracts the largest logit first, so no
    // exp overflows.
    double forward(const double* theta, const float* obs, double* act) const noexcept {
        double x0[kMaxObs];
        for (int j = 0; j < obs_dim_; ++j) x0[j] = static_cast<double>(obs[j]);
        const double* in = x0;
        double* out = act;
        for (const Layer& L : layers_) {
            dense(theta, L, in, out);
            for (int i = 0; i < L.out; ++i) out[i] = std::tanh(out[i]);
            in = out;
            out += L.out;
        }
        double* logp = out;
        dense(theta, policy_, in, logp);
        log_softmax_inplace(logp, n_actions_);
        double v;
        dense(theta, value_, in, &v);
        logp[n_actions_] = v;
        return v;
    }

    // The log-probabilities and V within a sample's activations.
    const double* log_probs(const double* act) const noexcept { return act + (act_size_ - n_actions_ - 1); }
    double value(const double* act) const noexcept { return act[act_size_ - 1]; }

    // Backward pass of one sample: adds d(loss)/d(theta) to grad, given d(loss)/d(logits) (A
    // values) and d(loss)/dV, from the activations forward() recorded. scratch: 2 max_width() doubles.
    void backward(const double* theta, const float* obs, const double* act, const double* dlogits, double dvalue,
                  double* grad, double* scratch) const noexcept {
        const int nl = static_cast<int>(layers_.size());
        // the trunk's last output, and each layer's input
        const double* top = act + offset_of_layer(nl - 1);
        double* dz = scratch;                    // gradient w.r.t. the current layer's pre-activation
        double* dh = scratch + max_width();      // gradient w.r.t. its input
        // heads: W_pi, b_pi, W_v, b_v, and the gradient reaching the trunk's top
        const int H = policy_.in;
        for (int j = 0; j < H; ++j) dh[j] = 0.0;
        for (int a = 0; a < n_actions_; ++a) {
            const double d = dlogits[a];
            double* gw = grad + policy_.w + static_cast<int64_t>(a) * H;
            const double* w = theta + policy_.w + static_cast<int64_t>(a) * H;
            for (int j = 0; j < H; ++j) {
                gw[j] += d * top[j];
                dh[j] += w[j] * d;
            }
            grad[policy_.b + a] += d;
        }
        {
            double* gw = grad + value_.w;
            const double* w = theta + value_.w;
            for (int j = 0; j < H; ++j) {
                gw[j] += dvalue * top[j];
                dh[j] += w[j] * dvalue;
            }
            grad[value_.b] += dvalue;
        }
        double x0[kMaxObs];
        for (int j = 0; j < obs_dim_; ++j) x0[j] = static_cast<double>(obs[j]);
        for (int l = nl - 1; l >= 0; --l) {
            const Layer& L = layers_[static_cast<size_t>(l)];
            const double* y = act + offset_of_layer(l);
            const double* x = l == 0 ? x0 : act + offset_of_layer(l - 1);
            for (int i = 0; i < L.out; ++i) dz[i] = dh[i] * (1.0 - y[i] * y[i]);  // tanh' = 1 - tanh^2
            if (l > 0)
                for (int j = 0; j < L.in; ++j) dh[j] = 0.0;
            for (int i = 0; i < L.out; ++i) {
                const double d = dz[i];
                double* gw = grad + L.w + static_cast<int64_t>(i) * L.in;
                for (int j = 0; j < L.in; ++j) gw[j] += d * x[j];
                grad[L.b + i] += d;
                if (l > 0) {
                    const double* w = theta + L.w + static_cast<int64_t>(i) * L.in;
                    for (int j = 0; j < L.in; ++j) dh[j] += w[j] * d;
                }
            }
        }
    }

    static constexpr int kMaxObs = 64;  // the bindings check obs_dim against it

private:
    struct Layer {
        int in, out;
        int64_t w, b;  // offsets of W and b in theta
    };

    // y = W x + b, each output one dot product over a contiguous row, summed in order j = 0, 1, ...
    // A single such sum is one chain of dependent additions (the compiler may not reorder it
    // without -ffast-math), so it runs at the adder's latency; four rows at once are four
    // independent chains that overlap in the pipeline, ~3x faster on the 64x64 layer, and every
    // output is still the same in-order sum, bit for bit.
    static void dense(const double* theta, const Layer& L, const double* x, double* y) noexcept {
        int i = 0;
        for (; i + 4 <= L.out; i += 4) {
            const double* w0 = theta + L.w + static_cast<int64_t>(i) * L.in;
            const double *w1 = w0 + L.in, *w2 = w1 + L.in, *w3 = w2 + L.in;
            double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
            for (int j = 0; j < L.in; ++j) {
                const double xj = x[j];
                s0 += w0[j] * xj;
                s1 += w1[j] * xj;
                s2 += w2[j] * xj;
                s3 += w3[j] * xj;
            }
            y[i] = s0 + theta[L.b + i];
            y[i + 1] = s1 + theta[L.b + i + 1];
            y[i + 2] = s2 + theta[L.b + i + 2];
            y[i + 3] = s3 + theta[L.b + i + 3];
        }
        for (; i < L.out; ++i) {
            const double* w = theta + L.w + static_cast<int64_t>(i) * L.in;
            double s = 0.0;
            for (int j = 0; j < L.in; ++j) s += w[j] * x[j];
            y[i] = s + theta[L.b + i];
        }
    }
    static void log_softmax_inplace(double* z, int n) noexcept {
        double m = z[0];
        for (int a = 1; a < n; ++a) m = z[a] > m ? z[a] : m;
        double s = 0.0;
        for (int a = 0; a < n; ++a) s += std::exp(z[a] - m);
        const double lse = m + std::log(s);
        for (int a = 0; a < n; ++a) z[a] -= lse;
    }
    int64_t offset_of_layer(int l) const noexcept {
        int64_t o = 0;
        for (int k = 0; k < l; ++k) o += hidden_[static_cast<size_t>(k)];
        return o;
    }

    int obs_dim_ = 0;
    std::vector<int> hidden_;
    int n_actions_ = 0;
    std::vector<Layer> layers_;
    Layer policy_{}, value_{};
    int64_t n_params_ = 0, act_size_ = 0;
};

}  // namespace asyncopt::rl
