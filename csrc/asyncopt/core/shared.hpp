// The one place where the shared model is read and written racily.
//
// Hogwild! (Niu et al. 2011) lets every thread read and write the model without locks. Written
// as plain `x += y` on shared memory that is a data race, i.e. undefined behaviour in C++, and it
// hides real bugs from ThreadSanitizer. Here every access to shared model state goes through
// shared_load / shared_store: relaxed atomic operations. On x86-64 and AArch64 a relaxed load or
// store of an aligned 4- or 8-byte value compiles to the same plain mov/ldr/str as a non-atomic
// access, so the race costs nothing, yet it is defined behaviour (a read returns some value that
// was written, never a torn mix of two) and TSan reports only the races that are not by design.
//
// A read-modify-write (load, compute, store) can lose a concurrent update to the same coordinate;
// that is exactly the Hogwild! semantics, whose analysis tolerates such overwrites when updates
// are sparse. Nothing here orders one coordinate's accesses relative to another's.
//
// The same headers compile for the GPU (csrc/cuda): there a shared word is accessed through
// cuda::atomic_ref at device scope, relaxed (ld/st.relaxed.gpu: served by L2, the level every SM
// sees, never a stale L1 line), and shared_add is the hardware's atomic add (red.global.add).
#pragma once

#include <atomic>
#include <cstddef>
#include <type_traits>

#include "hd.hpp"
#if defined(__CUDACC__)
#include <cuda/atomic>
#endif

namespace asyncopt {

// One word of a per-coordinate state struct, as Python's numpy structured dtype mirrors it
// (bindings/bind_logistic.cpp, state_layout): every rule's State lists its words in fields().
struct StateField {
    const char* name;
    size_t offset;
    bool real;  // the model's precision T; else a uint32 (a stamp)
};

template <class T>
ASYNCOPT_HD inline T shared_load(const T* p) noexcept {
    static_assert(std::is_trivially_copyable<T>::value && (sizeof(T) == 4 || sizeof(T) == 8),
                  "shared model words are 4- or 8-byte scalars");
#if defined(__CUDA_ARCH__)
    return cuda::atomic_ref<T, cuda::thread_scope_device>(*const_cast<T*>(p)).load(cuda::memory_order_relaxed);
#elif defined(__cpp_lib_atomic_ref)
    return std::atomic_ref<T>(*const_cast<T*>(p)).load(std::memory_order_relaxed);
#elif defined(__GNUC__)
    // C++17 has no std::atomic_ref; GCC/Clang's generic __atomic builtins are the same operation.
    T v;
    __atomic_load(const_cast<T*>(p), &v, __ATOMIC_RELAXED);
    return v;
#else
    return *static_cast<const volatile T*>(p);
#endif
}

template <class T>
ASYNCOPT_HD inline void shared_store(T* p, T v) noexcept {
    static_assert(std::is_trivially_copyable<T>::value && (sizeof(T) == 4 || sizeof(T) == 8),
                  "shared model words are 4- or 8-byte scalars");
#if defined(__CUDA_ARCH__)
    cuda::atomic_ref<T, cuda::thread_scope_device>(*p).store(v, cuda::memory_order_relaxed);
#elif defined(__cpp_lib_atomic_ref)
    std::atomic_ref<T>(*p).store(v, std::memory_order_relaxed);
#elif defined(__GNUC__)
    __atomic_store(p, &v, __ATOMIC_RELAXED);
#else
    *static_cast<volatile T*>(p) = v;
#endif
}

// *p += v as one indivisible read-modify-write (no lost update), relaxed: the GPU path's atomic
// write mode for SGD, where it is a single red.global.add, and LDA's K topic sums on the CPU
// (threads/lda.hpp). On the CPU a locked add costs several times a plain store under contention, so
// the threads backend's model words keep load + store instead.
template <class T>
ASYNCOPT_HD inline void shared_add(T* p, T v) noexcept {
#if defined(__CUDA_ARCH__)
    atomicAdd(p, v);
#elif defined(__cpp_lib_atomic_ref)
    std::atomic_ref<T>(*p).fetch_add(v, std::memory_order_relaxed);
#elif defined(__GNUC__)
    // no __atomic_fetch_add for floating point: a compare-exchange loop
    T old = shared_load(p);
    T want;
    do {
        want = old + v;
    } while (!__atomic_compare_exchange(p, &old, &want, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
#else
    *p += v;
#endif
}

}  // namespace asyncopt
