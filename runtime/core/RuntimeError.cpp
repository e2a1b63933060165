#include "runtime/core/RuntimeError.h"
