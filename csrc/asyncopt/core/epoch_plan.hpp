// How an epoch's updates are split among asynchronous workers (CPU threads in hogwild.hpp, GPU
// warps in gpu/logistic_worker.hpp), and the staleness statistics every backend reports. One
// definition, so a GPU run with W workers visits the rows in W slices exactly as W CPU threads would.
//
// Work split: worker w owns the contiguous slice [n w / W, n (w+1) / W) of the epoch's visiting
// order, reshuffled at the epoch start with its own RNG stream, and walks it in mini-batches of B.
// Segments: an epoch's update count is known before it starts (each slice gives ceil(len / B)
// mini-batches); a rule may cap how many updates run between two points where no worker runs (its
// catch-up tables, scales and 32-bit stamps need it), so the epoch runs as n_seg segments, each
// worker's batches split evenly over them.
#pragma once

#include <algorithm>
#include <cstdint>

#include "hd.hpp"

namespace asyncopt {

ASYNCOPT_HD inline int64_t slice_begin(int64_t n, int n_workers, int w) noexcept {
    return static_cast<int64_t>(static_cast<__int128>(n) * w / n_workers);
}

// Mini-batches of worker w's slice.
ASYNCOPT_HD inline int64_t worker_batches(int64_t n, int n_workers, int64_t B, int w) noexcept {
    return (slice_begin(n, n_workers, w + 1) - slice_begin(n, n_workers, w) + B - 1) / B;
}

// The first of a worker's n_batches that belongs to segment g of n_seg.
ASYNCOPT_HD inline int64_t segment_first_batch(int64_t n_batches, int64_t g, int64_t n_seg) noexcept {
    return n_batches * g / n_seg;
}

// The items worker w visits in segment g: [first, last) of the visiting order.
struct SliceRange {
    int64_t first, last;
};
ASYNCOPT_HD inline SliceRange segment_items(int64_t n, int n_workers, int64_t B, int w, int64_t g,
                                            int64_t n_seg) noexcept {
    const int64_t lo = slice_begin(n, n_workers, w), hi = slice_begin(n, n_workers, w + 1);
    const int64_t nb = (hi - lo + B - 1) / B;
    const int64_t first = lo + segment_first_batch(nb, g, n_seg) * B;
    const int64_t last = lo + segment_first_batch(nb, g + 1, n_seg) * B;
    return SliceRange{first, last < hi ? last : hi};
}

// The host's view of one epoch: how many segments, and how many updates each holds.
class EpochPlan {
public:
    EpochPlan(int64_t n, int n_workers, int64_t B, uint64_t max_segment_updates)
        : n_(n), workers_(n_workers), B_(B) {
        uint64_t total = 0;
        for (int w = 0; w < n_workers; ++w) total += static_cast<uint64_t>(worker_batches(n, n_workers, B, w));
        const uint64_t max_seg = std::max<uint64_t>(1, max_segment_updates);
        n_seg_ = static_cast<int64_t>(std::max<uint64_t>(1, (total + max_seg - 1) / max_seg));
    }
    int64_t segments() const noexcept { return n_seg_; }
    uint64_t segment_updates(int64_t g) const noexcept {
        uint64_t u = 0;
        for (int w = 0; w < workers_; ++w) {
            const int64_t nb = worker_batches(n_, workers_, B_, w);
            u += static_cast<uint64_t>(segment_first_batch(nb, g + 1, n_seg_) - segment_first_batch(nb, g, n_seg_));
        }
        return u;
    }
    SliceRange items(int w, int64_t g) const noexcept { return segment_items(n_, workers_, B_, w, g, n_seg_); }

private:
    int64_t n_;
    int workers_;
    int64_t B_;
    int64_t n_seg_;
};

// Staleness histogram: bin 0 holds tau = 0, bin b >= 1 holds tau in [2^(b-1), 2^b).
constexpr int kStalenessBins = 48;

ASYNCOPT_HD inline int staleness_bin(uint64_t tau) noexcept {
#if defined(__CUDA_ARCH__)
    const int b = tau == 0 ? 0 : 64 - __clzll(static_cast<long long>(tau));
#else
    const int b = tau == 0 ? 0 : 64 - __builtin_clzll(tau);
#endif
    return b < kStalenessBins - 1 ? b : kStalenessBins - 1;
}

struct StalenessStats {
    uint64_t count = 0, sum = 0, max = 0;
    uint64_t hist[kStalenessBins] = {};

    ASYNCOPT_HD void add(uint64_t tau) noexcept {
        ++count;
        sum += tau;
        max = max > tau ? max : tau;
        hist[staleness_bin(tau)] += 1;
    }
    void merge(const StalenessStats& o) noexcept {
        count += o.count;
        sum += o.sum;
        max = std::max(max, o.max);
        for (int b = 0; b < kStalenessBins; ++b) hist[b] += o.hist[b];
    }
};

struct EpochResult {
    uint64_t updates = 0;
    StalenessStats staleness;
};

}  // namespace asyncopt
