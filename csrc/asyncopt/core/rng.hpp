// Random streams for the Hogwild! driver: one independent stream per thread, all derived from
// the estimator's random_state (implicit's RNGVector, fastText's seed + threadId), so a run with
// n_threads=1 is reproducible to the bit and threads never share generator state. The GPU path
// draws its workers' streams from the same generator (host-and-device), so one GPU worker visits
// the rows in the order of one CPU thread.
#pragma once

#include <cstdint>

#include "hd.hpp"

namespace asyncopt {

// SplitMix64 (Steele, Lea, Flood 2014): turns (seed, stream id) into well-mixed 64-bit seeds.
ASYNCOPT_HD inline uint64_t splitmix64(uint64_t& x) noexcept {
    uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// xoshiro256** (Blackman, Vigna 2018): small state, fast, passes BigCrush.
class Rng {
public:
    ASYNCOPT_HD Rng(uint64_t seed, uint64_t stream) noexcept {
        uint64_t x = seed ^ (0xD1B54A32D192ED03ULL * (stream + 1));
        for (auto& w : s_) w = splitmix64(x);
    }
    ASYNCOPT_HD uint64_t next() noexcept {
        const uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }
    // Uniform integer in [0, n), unbiased (Lemire 2019, multiply-and-reject).
    ASYNCOPT_HD uint64_t below(uint64_t n) noexcept {
        __uint128_t m = static_cast<__uint128_t>(next()) * n;
        uint64_t low = static_cast<uint64_t>(m);
        if (low < n) {
            const uint64_t threshold = (0 - n) % n;
            while (low < threshold) {
                m = static_cast<__uint128_t>(next()) * n;
                low = static_cast<uint64_t>(m);
            }
        }
        return static_cast<uint64_t>(m >> 64);
    }

private:
    ASYNCOPT_HD static uint64_t rotl(uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
    uint64_t s_[4];
};

// Fisher-Yates shuffle of [first, first + n).
template <class I>
ASYNCOPT_HD void shuffle(I* first, uint64_t n, Rng& rng) noexcept {
    for (uint64_t i = n; i > 1; --i) {
        const uint64_t j = rng.below(i);
        const I tmp = first[i - 1];
        first[i - 1] = first[j];
        first[j] = tmp;
    }
}

}  // namespace asyncopt
