#pragma once
// The fixed-width integer types every kernel header uses. NVRTC compiles without any system or
// CUDA include directory, so it has no <cstdint>: there they are defined here, once (C++ allows a
// repeated typedef only when it names the same type, so one definition for all headers is the
// safe shape). nvcc and host compilers get the standard header.

#if defined(__CUDACC_RTC__)
typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef short int16_t;
typedef unsigned short uint16_t;
typedef int int32_t;
typedef unsigned int uint32_t;
typedef long long int64_t;
typedef unsigned long long uint64_t;
#else
#include <stdint.h>
#endif
