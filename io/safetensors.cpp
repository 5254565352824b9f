// safetensors.cpp: writing and (carefully) reading the safetensors format.
#include "io/safetensors.h"


#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "io/file.h"
#include "tensor/kernels/kernels.h"

namespace heed {

static_assert(std::endian::native == std::endian::little, "heed's safetensors code assumes a little-endian machine");

using json = nlohmann::json;

static const char* st_dtype(DType t) {
  switch (t) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::Int64: return "I64";
    case DType::Bool: return "BOOL";
  }
  return "?";
}

static bool from_st_dtype(const std::string& s, DType& out) {
  if (s == "F32") out = float32;
  else if (s == "F64") out = float64;
  else if (s == "I64") out = int64;
  else if (s == "BOOL") out = boolean;
  else return false;
  return true;
}

// ---- save -------------------------------------------------------------------------------------------------
void save(const std::string& path, const TensorMap& tensors, const Metadata& metadata) {
  // Header first: names in map order (sorted), offsets packed back to back.
  json header = json::object();
  uint64_t offset = 0;
  std::vector<Tensor> data;
  for (auto& [name, t] : tensors) {
    if (name == "__metadata__") throw SafetensorsError("save: \"__metadata__\" is reserved and cannot name a tensor");
    if (!t.defined()) throw SafetensorsError("save: tensor '" + name + "' is undefined");
    Tensor c = t.detach().contiguous();
    uint64_t nbytes = (uint64_t)c.numel() * dtype_size(c.dtype());
    header[name] = {{"dtype", st_dtype(c.dtype())}, {"shape", c.shape()}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    data.push_back(c);
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string js = header.dump();
  js.append((8 - js.size() % 8) % 8, ' ');  // pad to 8 bytes so the data that follows is aligned

  // Then the bytes, through io::AtomicFile: a reader sees the old file or the new one, never half of one.
  try {
    io::AtomicFile f(path, "save");
    uint64_t n = js.size();
    f.write(&n, 8);  // little-endian on this machine (static_assert above)
    f.write(js.data(), js.size());
    for (const Tensor& t : data)
      f.write(static_cast<const char*>(t.storage()->data) + t.offset() * dtype_size(t.dtype()),
              t.numel() * dtype_size(t.dtype()));
    f.commit();
  } catch (const SafetensorsError&) {
    throw;
  } catch (const Error& e) {
    throw SafetensorsError(e.what());
  }
}

// ---- load -------------------------------------------------------------------------------------------------
struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

TensorMap load(const std::string& path, Metadata* metadata) {
  auto fail = [&](const std::string& why) -> SafetensorsError { return SafetensorsError("load: " + path + ": " + why); };
  std::ifstream f(path, std::ios::binary);
  if (!f) throw fail(std::string("cannot open: ") + std::strerror(errno));
  f.seekg(0, std::ios::end);
  uint64_t file_size = (uint64_t)f.tellg();
  f.seekg(0);
  if (file_size < 8) throw fail("only " + std::to_string(file_size) + " bytes; a file needs at least the 8-byte header length");
  uint64_t n = 0;
  f.read(reinterpret_cast<char*>(&n), 8);
  constexpr uint64_t kMaxHeader = 100'000'000;  // the reference implementation's limit
  if (n > kMaxHeader) throw fail("header length " + std::to_string(n) + " exceeds the 100 MB limit");
  if (n > file_size - 8) throw fail("header length " + std::to_string(n) + " runs past the end of the " + std::to_string(file_size) + "-byte file");
  std::string js(n, '\0');
  f.read(js.data(), (std::streamsize)n);

  // Parse, rejecting duplicate keys (nlohmann would silently keep the last one): the callback sees
  // every key, and `seen[depth]` holds the keys of the object currently open at that depth.
  std::vector<std::set<std::string>> seen;
  std::string duplicate;
  json header;
  try {
    header = json::parse(js, [&](int depth, json::parse_event_t ev, json& parsed) {
      if (ev == json::parse_event_t::object_start) {
        if ((int)seen.size() <= depth) seen.resize(depth + 1);
        seen[depth].clear();
      } else if (ev == json::parse_event_t::key) {
        int d = depth - 1;  // keys are reported one level inside their object
        if (d >= 0 && (int)seen.size() > d && !seen[d].insert(parsed.get<std::string>()).second && duplicate.empty())
          duplicate = parsed.get<std::string>();
      }
      return true;
    });
  } catch (const json::exception& e) {
    throw fail(std::string("the header is not valid JSON (") + e.what() + ")");
  }
  if (!duplicate.empty()) throw fail("duplicate key \"" + duplicate + "\" in the header");
  if (!header.is_object()) throw fail("the header must be a JSON object");

  std::vector<Entry> entries;
  for (auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (!info.is_object()) throw fail("__metadata__ must be an object of strings");
      for (auto& [k, v] : info.items()) {
        if (!v.is_string()) throw fail("__metadata__ value for \"" + k + "\" is not a string");
        if (metadata) (*metadata)[k] = v.get<std::string>();
      }
      continue;
    }
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets"))
      throw fail("tensor \"" + name + "\" needs dtype, shape and data_offsets");
    Entry e{name, float32, {}, 0, 0};
    if (!info["dtype"].is_string() || !from_st_dtype(info["dtype"].get<std::string>(), e.dtype))
      throw fail("tensor \"" + name + "\" has an unknown dtype " + info["dtype"].dump());
    const json& shape = info["shape"];
    if (!shape.is_array()) throw fail("tensor \"" + name + "\": shape must be an array");
    uint64_t count = 1;
    for (const json& d : shape) {
      if (!d.is_number_unsigned()) throw fail("tensor \"" + name + "\": shape entries must be non-negative integers, got " + shape.dump());
      uint64_t v = d.get<uint64_t>();
      if (v != 0 && count > UINT64_MAX / v) throw fail("tensor \"" + name + "\": the element count of shape " + shape.dump() + " overflows");
      count *= v;
      e.shape.push_back((int64_t)v);
    }
    const json& off = info["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw fail("tensor \"" + name + "\": data_offsets must be two non-negative integers");
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    if (e.end < e.begin) throw fail("tensor \"" + name + "\": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "] end before they begin");
    uint64_t es = dtype_size(e.dtype);
    if (count > UINT64_MAX / es || count * es != e.end - e.begin)
      throw fail("tensor \"" + name + "\": shape " + shape.dump() + " of " + info["dtype"].get<std::string>() + " needs " +
                 (count > UINT64_MAX / es ? std::string("more than 2^64") : std::to_string(count * es)) + " bytes but data_offsets span " +
                 std::to_string(e.end - e.begin));
    entries.push_back(std::move(e));
  }

  // The byte ranges must tile [0, data size) exactly: sorted by start, each begins where the last ended.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t at = 0;
  for (const Entry& e : entries) {
    if (e.begin < at) throw fail("tensor \"" + e.name + "\" overlaps the previous tensor (begins at " + std::to_string(e.begin) + ", before " + std::to_string(at) + ")");
    if (e.begin > at) throw fail("a hole in the data: tensor \"" + e.name + "\" begins at " + std::to_string(e.begin) + ", the previous ended at " + std::to_string(at));
    at = e.end;
  }
  uint64_t data_size = file_size - 8 - n;
  if (at != data_size)
    throw fail("the file holds " + std::to_string(data_size) + " bytes of data but the header describes " + std::to_string(at));

  // Only now, with every size bounded by the file's, allocate and read.
  TensorMap out;
  for (const Entry& e : entries) {
    Tensor t = empty(e.shape, e.dtype);
    f.seekg((std::streamoff)(8 + n + e.begin));
    f.read(static_cast<char*>(t.storage()->data), (std::streamsize)(e.end - e.begin));
    if (!f) throw fail("reading tensor \"" + e.name + "\" failed");
    if (e.dtype == boolean) {  // any non-zero byte would be an invalid bool; normalise to 0/1
      uint8_t* p = static_cast<uint8_t*>(t.storage()->data);
      for (int64_t i = 0; i < t.numel(); i++) p[i] = p[i] != 0;
    }
    out[e.name] = t;
  }
  return out;
}

}  // namespace heed
