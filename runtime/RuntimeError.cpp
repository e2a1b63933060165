#include "runtime/RuntimeError.h"
