// Stackful context switching for the SIMT emulator's fibers (one per CUDA thread): on x86-64 a
// few instructions of System V assembly, elsewhere ucontext. glibc's swapcontext makes two
// system calls a switch (it saves and restores the signal mask), and the emulator switches at
// every barrier and warp collective of every thread: the assembly runs the [cuda] tests in the
// emulator several times faster.
#pragma once

#include <cstddef>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace pptrain::simt {

struct FiberContext {
#if defined(__x86_64__)
  void* sp = nullptr;  // the saved stack pointer; the callee-saved registers lie above it
#else
  ucontext_t uc{};
#endif
};

// Makes `ctx` start entry() on the stack [stack, stack + bytes) at the first switch to it.
// entry must never return: it ends by switching away for good.
void prepare_fiber(FiberContext& ctx, unsigned char* stack, std::size_t bytes, void (*entry)());

// Saves the running context in `from` and resumes `to`; returns when something switches back.
void switch_fiber(FiberContext& from, FiberContext& to);

}  // namespace pptrain::simt
