// safetensors.cpp: writing and (carefully) reading the safetensors format.
#include "io/safetensors.h"


#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_set>
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

// A dtype as it is stored in the file, and the heed dtype it loads as. PyTorch checkpoints also hold
// half-precision floats and narrower integers; heed has none of those, so load widens them exactly:
//   F16, BF16 -> float32   (every half and bfloat16 value, subnormals, inf and NaN included, is a float32)
//   I32, I16, I8, U8 -> int64
struct FileDType {
  const char* name;
  size_t size;  // bytes per element in the file
  DType dtype;  // what heed holds after loading
};
static const FileDType kFileDTypes[] = {
    {"F32", 4, float32}, {"F64", 8, float64}, {"I64", 8, int64}, {"BOOL", 1, boolean}, {"F16", 2, float32},
    {"BF16", 2, float32}, {"I32", 4, int64},  {"I16", 2, int64}, {"I8", 1, int64},      {"U8", 1, int64},
};

static const FileDType* from_st_dtype(const std::string& s) {
  for (const FileDType& d : kFileDTypes)
    if (s == d.name) return &d;
  return nullptr;
}

// IEEE binary16 -> binary32, exactly: sign, 5-bit exponent (bias 15), 10-bit mantissa.
static float half_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));  // inf, NaN (payload kept)
  if (exp != 0) return std::bit_cast<float>(sign | ((exp + 127 - 15) << 23) | (mant << 13));
  // Zero or subnormal: mant · 2^-24, exact in float32.
  float v = std::ldexp((float)mant, -24);
  return sign ? -v : v;
}

// bfloat16 is the top half of a float32, so widening is a shift.
static float bfloat16_to_float(uint16_t b) { return std::bit_cast<float>((uint32_t)b << 16); }

// Widens n elements of a narrower file dtype from `src` into t (float32 or int64).
static void widen(const std::string& name, const void* src, int64_t n, Tensor& t) {
  auto each = [&](auto* in, auto* out, auto f) {
    for (int64_t i = 0; i < n; i++) out[i] = f(in[i]);
  };
  auto id = [](auto v) { return (int64_t)v; };
  if (name == "F16") each((const uint16_t*)src, t.data_ptr<float>(), half_to_float);
  else if (name == "BF16") each((const uint16_t*)src, t.data_ptr<float>(), bfloat16_to_float);
  else if (name == "I32") each((const int32_t*)src, t.data_ptr<int64_t>(), id);
  else if (name == "I16") each((const int16_t*)src, t.data_ptr<int64_t>(), id);
  else if (name == "I8") each((const int8_t*)src, t.data_ptr<int64_t>(), id);
  else if (name == "U8") each((const uint8_t*)src, t.data_ptr<int64_t>(), id);
  else assert(false && "widen: a file dtype without a conversion");
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
  {
    io::AtomicFile f(path, "save");
    uint64_t n = js.size();
    f.write(&n, 8);  // little-endian on this machine (static_assert above)
    f.write(js.data(), js.size());
    for (const Tensor& t : data)
      f.write(static_cast<const char*>(t.storage()->data) + t.offset() * dtype_size(t.dtype()),
              t.numel() * dtype_size(t.dtype()));
    f.commit();  // io::IoError (a runtime_error) when the disk is full or the folder missing
  }
}

// ---- load -------------------------------------------------------------------------------------------------
// A JSON value for an error message, cut to 80 characters: a hostile header may hold megabytes.
static std::string brief(const json& j) {
  std::string s = j.dump();
  return s.size() <= 80 ? s : s.substr(0, 77) + "...";
}

struct Entry {
  std::string name;
  const FileDType* dtype;
  Shape shape;
  uint64_t begin, end;
};

// A first, linear pass over the header with nlohmann's SAX interface, before any DOM is built. It refuses
// what the DOM parser would accept but the reference implementation does not:
//  - nesting deeper than serde_json's limit of 128: a 200 KB "[[[[...]]]]" would otherwise be built into a
//    DOM that dump() (in an error message) and the destructor walk recursively, off the end of the stack;
//  - duplicate keys, which nlohmann silently resolves to the last. Each open object keeps a hash set of its
//    keys, so 200,000 tensors cost 200,000 inserts (the parse callback this replaces was quadratic).
struct HeaderCheck : nlohmann::json_sax<json> {
  static constexpr size_t kMaxDepth = 128;
  std::vector<std::unordered_set<std::string>> keys;  // one per open object
  size_t depth = 0;
  std::string error;

  bool open() {
    if (++depth > kMaxDepth) return fail("the header nests deeper than " + std::to_string(kMaxDepth) + " levels");
    keys.emplace_back();  // arrays get an (unused) set too, so that close() pops either
    return true;
  }
  bool close() {
    keys.pop_back();
    --depth;
    return true;
  }
  bool fail(std::string why) {
    if (error.empty()) error = std::move(why);
    return false;
  }
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return open(); }
  bool key(string_t& k) override {
    if (!keys.back().insert(k).second) return fail("duplicate key \"" + k + "\" in the header");
    return true;
  }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    return fail(std::string("the header is not valid JSON (") + e.what() + ")");
  }
};

TensorMap load(const std::string& path, Metadata* metadata) {
  auto fail = [&](const std::string& why) -> SafetensorsError {
    return SafetensorsError("load: " + path + ": " + why);
  };
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw fail("is a directory, not a safetensors file");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw fail(std::string("cannot open: ") + std::strerror(errno));
  f.seekg(0, std::ios::end);
  const std::streamoff end = f.tellg();
  if (end < 0) throw fail("cannot tell its size (not a regular file?)");
  uint64_t file_size = (uint64_t)end;
  f.seekg(0);
  if (file_size < 8)
    throw fail("only " + std::to_string(file_size) + " bytes; a file needs at least the 8-byte header length");
  uint64_t n = 0;
  f.read(reinterpret_cast<char*>(&n), 8);
  constexpr uint64_t kMaxHeader = 100'000'000;  // the reference implementation's limit
  if (n > kMaxHeader) throw fail("header length " + std::to_string(n) + " exceeds the 100 MB limit");
  if (n > file_size - 8)
    throw fail("header length " + std::to_string(n) + " runs past the end of the " + std::to_string(file_size) +
               "-byte file");
  std::string js(n, '\0');
  f.read(js.data(), (std::streamsize)n);
  if (!f) throw fail("reading the " + std::to_string(n) + "-byte header failed");

  // nlohmann's lexer takes a NUL byte for the end of the input, so "{...}\0garbage" would parse; JSON
  // text has no place for one.
  if (size_t nul = js.find('\0'); nul != std::string::npos)
    throw fail("the header holds a NUL byte at offset " + std::to_string(nul) + " (JSON text cannot)");
  HeaderCheck check;
  if (!json::sax_parse(js, &check) || !check.error.empty())
    throw fail(check.error.empty() ? std::string("the header is not valid JSON") : check.error);
  json header;
  try {
    header = json::parse(js);
  } catch (const json::exception& e) {
    throw fail(std::string("the header is not valid JSON (") + e.what() + ")");
  }
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
    Entry e{name, nullptr, {}, 0, 0};
    if (!info["dtype"].is_string() || !(e.dtype = from_st_dtype(info["dtype"].get<std::string>())))
      throw fail("tensor \"" + name + "\" has an unknown dtype " + brief(info["dtype"]));
    const json& shape = info["shape"];
    if (!shape.is_array()) throw fail("tensor \"" + name + "\": shape must be an array");
    for (const json& d : shape) {
      if (!d.is_number_unsigned())
        throw fail("tensor \"" + name + "\": shape entries must be non-negative integers, got " + brief(shape));
      uint64_t v = d.get<uint64_t>();
      if (v > (uint64_t)INT64_MAX)
        throw fail("tensor \"" + name + "\": shape " + brief(shape) + " has a size above 2^63-1");
      e.shape.push_back((int64_t)v);
    }
    // The checked product every tensor's shape passes (shape.h), so that [0, 2^40, 2^40], which holds no
    // bytes, is refused here rather than overflowing its strides later.
    uint64_t count;
    try {
      count = (uint64_t)checked_numel("load", e.shape);
    } catch (const Error&) {
      throw fail("tensor \"" + name + "\": the element count of shape " + brief(shape) +
                 " overflows (more than 2^63-1, counting its non-zero sizes)");
    }
    const json& off = info["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw fail("tensor \"" + name + "\": data_offsets must be two non-negative integers");
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    if (e.end < e.begin)
      throw fail("tensor \"" + name + "\": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                 "] end before they begin");
    uint64_t es = e.dtype->size;
    if (count > UINT64_MAX / es || count * es != e.end - e.begin)
      throw fail("tensor \"" + name + "\": shape " + brief(shape) + " of " + info["dtype"].get<std::string>() +
                 " needs " + (count > UINT64_MAX / es ? std::string("more than 2^64") : std::to_string(count * es)) +
                 " bytes but data_offsets span " + std::to_string(e.end - e.begin));
    entries.push_back(std::move(e));
  }

  // The byte ranges must tile [0, data size) exactly: sorted by start, each begins where the last ended.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t at = 0;
  for (const Entry& e : entries) {
    if (e.begin < at)
      throw fail("tensor \"" + e.name + "\" overlaps the previous tensor (begins at " + std::to_string(e.begin) +
                 ", before " + std::to_string(at) + ")");
    if (e.begin > at)
      throw fail("a hole in the data: tensor \"" + e.name + "\" begins at " + std::to_string(e.begin) +
                 ", the previous ended at " + std::to_string(at));
    at = e.end;
  }
  uint64_t data_size = file_size - 8 - n;
  if (at != data_size)
    throw fail("the file holds " + std::to_string(data_size) + " bytes of data but the header describes " +
               std::to_string(at));

  // Only now, with every size bounded by the file's, allocate and read.
  TensorMap out;
  for (const Entry& e : entries) {
    Tensor t = empty(e.shape, e.dtype->dtype);
    const bool same = std::strcmp(e.dtype->name, st_dtype(t.dtype())) == 0;  // stored as heed holds it: read in place
    std::vector<char> narrow(same ? 0 : e.end - e.begin);
    char* dst = same ? static_cast<char*>(t.storage()->data) : narrow.data();
    f.seekg((std::streamoff)(8 + n + e.begin));
    f.read(dst, (std::streamsize)(e.end - e.begin));
    if (!f) throw fail("reading tensor \"" + e.name + "\" failed");
    if (!same) widen(e.dtype->name, narrow.data(), t.numel(), t);
    if (t.dtype() == boolean) {  // any non-zero byte would be an invalid bool; normalise to 0/1
      uint8_t* p = static_cast<uint8_t*>(t.storage()->data);
      for (int64_t i = 0; i < t.numel(); i++) p[i] = p[i] != 0;
    }
    out[e.name] = t;
  }
  return out;
}

}  // namespace heed
