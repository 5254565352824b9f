// safetensors.h: heed's checkpoint format, the same bytes PyTorch's safetensors library reads and writes.
//
// A file is:  an 8-byte little-endian header length N | N bytes of JSON | the raw tensor data.
// The JSON maps each name to {"dtype": "F32", "shape": [2,3], "data_offsets": [begin, end]}, offsets
// relative to the start of the data; an optional "__metadata__" maps strings to strings. The data of all
// tensors is packed back to back with no holes, so the file length is exactly 8 + N + the last end.
#pragma once
#include <map>
#include <string>

#include "tensor/tensor.h"

namespace heed {

using TensorMap = std::map<std::string, Tensor>;
using Metadata = std::map<std::string, std::string>;

/// Every way a file can be malformed; the message names the file and the problem.
struct SafetensorsError : Error {
  using Error::Error;
};

/// Writes `tensors` (float32 -> F32, float64 -> F64, int64 -> I64, bool -> BOOL) in name order.
/// Atomic: the bytes go to a temporary file in the same folder, which is fsynced and then renamed over
/// `path`, so a crash mid-save leaves the previous file intact. A file that cannot be written (a missing
/// folder, a full disk) throws io::IoError, a std::runtime_error.
void save(const std::string& path, const TensorMap& tensors, const Metadata& metadata = {});

/// Reads and validates a file as the reference implementation does: the header length (at most 100 MB
/// and inside the file), valid JSON without duplicate keys, known dtypes, element counts that do not
/// overflow and match the byte ranges, offsets that start at 0 and are contiguous with no overlap or
/// hole, and a file length of exactly header plus data. Nothing large is allocated before all of that
/// has been checked. Besides heed's own four dtypes it reads what PyTorch checkpoints hold, widened
/// exactly: F16 and BF16 load as float32; I32, I16, I8 and U8 as int64.
TensorMap load(const std::string& path, Metadata* metadata = nullptr);

}  // namespace heed
