#pragma once
// What the parts of the host emulation share between their .cpp files (not for kernels or tests):
// HostEmulation.cpp runs blocks and fibers; HostEmulationHopper.cpp adds the sm_90a execution model
// (warpgroups, mbarriers, the tensor memory accelerator, wgmma) on top of it through these calls.

#include <cstddef>

#include "runtime/emulation/HostEmulation.h"

namespace attnc::host_emulation::detail {

// Implemented by HostEmulation.cpp; valid only inside launch(), on a fiber (the running CUDA thread).
int current_thread();          // the running thread's index in its block (x fastest)
int block_thread_count();      // threads per block
void suspend_current();        // the running thread waits until another calls wake() on it
void wake(int thread);         // makes a suspended thread runnable again
unsigned char* shared_base();  // the block's dynamic shared memory
size_t shared_bytes();         // its size
LaunchStats& stats();          // the counters of the running launch

// Implemented by HostEmulationHopper.cpp; called by HostEmulation.cpp. begin: before the first
// thread of a block runs; thread_exit: when a thread's kernel function returns (or throws);
// end: after every thread finished, throwing InternalError for Hopper state left unfinished
// (wgmma groups never waited for, named barriers with partial arrivals).
void hopper_block_begin(int threads);
void hopper_thread_exit(int thread);
void hopper_block_end();

}  // namespace attnc::host_emulation::detail
