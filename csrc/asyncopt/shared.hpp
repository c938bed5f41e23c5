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
#pragma once

#include <atomic>
#include <type_traits>

namespace asyncopt {

template <class T>
inline T shared_load(const T* p) noexcept {
    static_assert(std::is_trivially_copyable<T>::value && (sizeof(T) == 4 || sizeof(T) == 8),
                  "shared model words are 4- or 8-byte scalars");
#if defined(__cpp_lib_atomic_ref)
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
inline void shared_store(T* p, T v) noexcept {
    static_assert(std::is_trivially_copyable<T>::value && (sizeof(T) == 4 || sizeof(T) == 8),
                  "shared model words are 4- or 8-byte scalars");
#if defined(__cpp_lib_atomic_ref)
    std::atomic_ref<T>(*p).store(v, std::memory_order_relaxed);
#elif defined(__GNUC__)
    __atomic_store(p, &v, __ATOMIC_RELAXED);
#else
    *static_cast<volatile T*>(p) = v;
#endif
}

}  // namespace asyncopt
