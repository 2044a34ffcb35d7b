// See fiber_switch.h. The x86-64 switch saves what the System V ABI says a call preserves:
// rbx, rbp, r12-r15, the stack pointer, MXCSR and the x87 control word.
#include "kernels/simt_emulator/fiber_switch.h"

#include <pthread.h>

#include <cstdint>
#include <cstring>

#if defined(__SANITIZE_ADDRESS__)
#define PPTRAIN_SIMT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PPTRAIN_SIMT_ASAN 1
#endif
#endif
#ifdef PPTRAIN_SIMT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if defined(__x86_64__)
extern "C" void pptrain_simt_switch(void** save_sp, void* load_sp);

// Frame at a saved sp: [sp] MXCSR (4 bytes) and x87 control word, [sp+8] r15, r14, r13, r12,
// rbx, rbp, [sp+56] the address `ret` resumes at.
asm(R"(
  .text
  .globl pptrain_simt_switch
  .type pptrain_simt_switch, @function
pptrain_simt_switch:
  endbr64
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size pptrain_simt_switch, .-pptrain_simt_switch
)");
#endif

namespace pptrain::simt {

void adopt_thread(FiberContext& ctx) {
  pthread_attr_t attr;
  void* bottom = nullptr;
  std::size_t bytes = 0;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    pthread_attr_getstack(&attr, &bottom, &bytes);
    pthread_attr_destroy(&attr);
  }
  ctx.stack_bottom = bottom;
  ctx.stack_bytes = bytes;
}

void fiber_started() {
#ifdef PPTRAIN_SIMT_ASAN
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
}

namespace {
// Around every switch: tell AddressSanitizer which stack runs next, and that it now does.
void before_switch(void** fake_stack, const FiberContext& to) {
#ifdef PPTRAIN_SIMT_ASAN
  __sanitizer_start_switch_fiber(fake_stack, to.stack_bottom, to.stack_bytes);
#else
  (void)fake_stack;
  (void)to;
#endif
}
void after_switch(void* fake_stack) {
#ifdef PPTRAIN_SIMT_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#else
  (void)fake_stack;
#endif
}
void set_stack(FiberContext& ctx, unsigned char* stack, std::size_t bytes) {
  ctx.stack_bottom = stack;
  ctx.stack_bytes = bytes;
#ifdef PPTRAIN_SIMT_ASAN
  // A reused stack still carries the redzones of the frames its last fiber left behind.
  __asan_unpoison_memory_region(stack, bytes);
#endif
}
}  // namespace

#if defined(__x86_64__)
void prepare_fiber(FiberContext& ctx, unsigned char* stack, std::size_t bytes, void (*entry)()) {
  set_stack(ctx, stack, bytes);
  // After the first switch pops the frame and `ret`s into entry, rsp must be 8 mod 16, as right
  // after a call: the frame starts 72 bytes below a 16-byte aligned top.
  const auto top = (reinterpret_cast<std::uintptr_t>(stack) + bytes) & ~std::uintptr_t{15};
  auto* frame = reinterpret_cast<unsigned char*>(top - 72);
  std::memset(frame, 0, 72);
  const std::uint32_t mxcsr = 0x1F80;   // all exceptions masked, round to nearest
  const std::uint16_t fpu_cw = 0x037F;  // the x87 default
  std::memcpy(frame, &mxcsr, sizeof mxcsr);
  std::memcpy(frame + 4, &fpu_cw, sizeof fpu_cw);
  const auto target = reinterpret_cast<std::uintptr_t>(entry);
  std::memcpy(frame + 56, &target, sizeof target);  // [frame+64]: a null return address for entry
  ctx.sp = frame;
}

void switch_fiber(FiberContext& from, FiberContext& to) {
  void* fake_stack = nullptr;
  before_switch(&fake_stack, to);
  pptrain_simt_switch(&from.sp, to.sp);
  after_switch(fake_stack);
}
#else
void prepare_fiber(FiberContext& ctx, unsigned char* stack, std::size_t bytes, void (*entry)()) {
  set_stack(ctx, stack, bytes);
  getcontext(&ctx.uc);
  ctx.uc.uc_stack.ss_sp = stack;
  ctx.uc.uc_stack.ss_size = bytes;
  ctx.uc.uc_link = nullptr;
  makecontext(&ctx.uc, entry, 0);
}

void switch_fiber(FiberContext& from, FiberContext& to) {
  void* fake_stack = nullptr;
  before_switch(&fake_stack, to);
  swapcontext(&from.uc, &to.uc);
  after_switch(fake_stack);
}
#endif

}  // namespace pptrain::simt
