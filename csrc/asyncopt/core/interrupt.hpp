// Ctrl-C during a native fit. While Python waits in a native epoch (GIL released), its own SIGINT
// handler only marks the signal for later: the epoch would run to its end before Python saw it.
// The binding (bind_interrupt.cpp) therefore installs, for the duration of a fit's epoch loop, a
// C handler that sets this flag; every free-running worker loop polls it between mini-batches
// (one relaxed load, no shared write), claims no further step, and the epoch returns what it has
// applied. The flag is a lock-free atomic at namespace scope (constant-initialised), so setting
// it is async-signal-safe. Lockstep epochs do not poll: a thread leaving early would leave the
// others at the round barrier; they stop at the epoch's end.
#pragma once

#include <atomic>

namespace asyncopt {

inline std::atomic<bool> g_stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the stop flag is set from a signal handler");

inline bool stop_requested() noexcept { return g_stop_requested.load(std::memory_order_relaxed); }
inline void request_stop() noexcept { g_stop_requested.store(true, std::memory_order_relaxed); }
inline void clear_stop() noexcept { g_stop_requested.store(false, std::memory_order_relaxed); }

}  // namespace asyncopt
