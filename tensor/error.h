// error.h: the one exception type heed throws for a user's mistake.
//
// Every message starts with the op or layer that refused, then shows the shapes or the value at fault:
//   matmul: (2,3) @ (4,5): inner dimensions 3 != 4
// Loaders (io/safetensors.h, data/data.h) and modules throw types derived from it, so one
// `catch (const heed::Error&)` sees them all. Internal invariants are asserts, not Errors.
#pragma once
#include <stdexcept>

namespace heed {

struct Error : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// Memory the system could not give (std::bad_alloc, with the op, the shape and the bytes asked for). Not a
/// caller's mistake but a failure of the run, so a runtime_error: the zoo exits 1 for it.
struct OutOfMemory : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace heed
