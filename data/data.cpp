// data.cpp: the IDX reader, Fashion-MNIST, the fortunes corpus, synthetic data, and the small
// non-template parts of the DataLoader. See data.h for what each function promises.
#include "data/data.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

namespace heed::data {

namespace fs = std::filesystem;

// =====================================================================================================
// IDX files
// =====================================================================================================
//
// The format (LeCun's MNIST page): a 4-byte magic 00 00 TT NN, where TT is the element type and NN the
// number of dims; then NN sizes, each a 32-bit big-endian unsigned integer; then the elements, row-major,
// big-endian. Every check runs before the payload is allocated, and the payload buffer grows only as bytes
// actually arrive, so a lying header cannot make us allocate what the file does not hold.

namespace {

std::string hex_byte(uint8_t b) {
  static const char* hex = "0123456789abcdef";
  return std::string("0x") + hex[b >> 4] + hex[b & 15];
}

// Bytes per element of an IDX type code, or 0 for a code IDX does not define.
size_t idx_type_size(uint8_t code) {
  switch (code) {
    case 0x08: case 0x09: return 1;
    case 0x0B: return 2;
    case 0x0C: case 0x0D: return 4;
    case 0x0E: return 8;
    default: return 0;
  }
}

// A gzFile that closes itself.
struct GzReader {
  gzFile f = nullptr;
  ~GzReader() {
    if (f) gzclose(f);
  }
};

// Reads up to n bytes into dst; returns how many arrived (fewer only at the end of the file). gzread
// handles a raw file as well as a gzipped one. A damaged gzip stream (bad data, bad CRC) throws; a gzip
// stream cut short reads as an early end, so that the caller reports it as a truncated file.
size_t read_up_to(const std::string& op, const std::string& path, gzFile f, uint8_t* dst, size_t n) {
  size_t got = 0;
  while (got < n) {
    unsigned chunk = (unsigned)std::min<size_t>(n - got, size_t(1) << 20);
    int r = gzread(f, dst + got, chunk);
    int errnum = Z_OK;
    const char* msg = gzerror(f, &errnum);
    if (r < 0 || (errnum != Z_OK && errnum != Z_BUF_ERROR)) {
      std::string why;
      if (errnum == Z_ERRNO) {
        why = std::strerror(errno);
      } else {
        // zlib's message is "path: what went wrong"; keep the second part.
        why = msg;
        if (why.rfind(path + ": ", 0) == 0) why = why.substr(path.size() + 2);
        why += " (a damaged gzip file?)";
      }
      throw Error(op + ": '" + path + "': cannot read: " + why);
    }
    if (r == 0) break;  // end of file (or of a truncated gzip stream: Z_BUF_ERROR)
    got += (size_t)r;
  }
  return got;
}

// Appended to a "truncated" message when the file is gzipped and its stream stops mid-way.
std::string gzip_cut_note(gzFile f) {
  int errnum = Z_OK;
  gzerror(f, &errnum);
  return errnum == Z_BUF_ERROR ? " (the gzip stream itself is cut short)" : "";
}

// zlib's gzread stops at the end of the last gzip member and silently ignores whatever follows when it
// does not look like another member, so "data.gz + garbage" would load. This walks the members with
// inflate (output discarded): each must be a whole gzip stream, and the file must end where the last ends.
void check_gzip_tail(const std::string& op, const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) throw Error(op + ": '" + path + "': cannot open: " + std::strerror(errno));
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) throw Error(op + ": '" + path + "': zlib could not start");
  std::unique_ptr<z_stream, int (*)(z_streamp)> end(&z, inflateEnd);
  std::vector<uint8_t> in(1 << 16), out(1 << 16);
  uint64_t read = 0, member_end = 0;
  bool between = false;  // just past the end of a member
  for (;;) {
    if (z.avail_in == 0) {
      size_t n = std::fread(in.data(), 1, in.size(), f.get());
      if (n == 0) break;
      read += n;
      z.next_in = in.data(), z.avail_in = (uInt)n;
    }
    if (between) {  // more bytes after a member: they must start another one
      inflateReset(&z);
      between = false;
    }
    z.next_out = out.data(), z.avail_out = (uInt)out.size();
    int r = inflate(&z, Z_NO_FLUSH);
    if (r == Z_STREAM_END) {
      member_end = read - z.avail_in;
      between = true;
    } else if (r != Z_OK && r != Z_BUF_ERROR) {
      std::fseek(f.get(), 0, SEEK_END);
      const long size = std::ftell(f.get());
      throw Error(op + ": '" + path + "': " + std::to_string(size - (long)member_end) +
                  " bytes of trailing data follow the gzip stream, which ends at byte " + std::to_string(member_end));
    }
  }
}

IdxFile read_idx_impl(const std::string& op, const std::string& path, int64_t max_bytes) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(op + ": '" + path + "': no such file");
  if (fs::is_directory(path, ec)) throw Error(op + ": '" + path + "' is a directory, not an IDX file");
  GzReader in;
  in.f = gzopen(path.c_str(), "rb");
  if (!in.f) throw Error(op + ": '" + path + "': cannot open: " + std::strerror(errno));
  // zlib's default 8 KB buffer makes many more read() calls on a data set; a small file needs no more
  // (zlib allocates the input buffer and twice that for output, 384 KB at 128 KB).
  const uintmax_t file_bytes = fs::file_size(path, ec);
  gzbuffer(in.f, (unsigned)std::clamp<uintmax_t>(ec ? 0 : file_bytes, 8 << 10, 128 << 10));

  // ---- the header ----
  IdxFile idx;
  uint8_t magic[4];
  size_t got = read_up_to(op, path, in.f, magic, 4);
  if (got < 4)
    throw Error(op + ": '" + path + "' is truncated: it holds " + std::to_string(got) +
                " bytes, but an IDX header alone needs at least 4" + gzip_cut_note(in.f));
  if (magic[0] != 0 || magic[1] != 0)
    throw Error(op + ": '" + path + "': bad magic " + hex_byte(magic[0]) + " " + hex_byte(magic[1]) +
                ": an IDX file starts with two zero bytes (is this an IDX file?)");
  size_t elem_size = idx_type_size(magic[2]);
  if (elem_size == 0)
    throw Error(op + ": '" + path + "': unknown IDX type code " + hex_byte(magic[2]) +
                " (known: 0x08 ubyte, 0x09 sbyte, 0x0b short, 0x0c int, 0x0d float, 0x0e double)");
  int ndims = magic[3];
  if (ndims < 1 || ndims > 4)
    throw Error(op + ": '" + path + "': the header declares " + std::to_string(ndims) +
                " dims; an IDX file here has 1 to 4");
  idx.type = static_cast<IdxType>(magic[2]);

  uint8_t dims_be[16];
  got = read_up_to(op, path, in.f, dims_be, 4 * (size_t)ndims);
  if (got < 4 * (size_t)ndims)
    throw Error(op + ": '" + path + "' is truncated inside its header: " + std::to_string(4 + got) + " bytes, but " +
                std::to_string(ndims) + " dims need " + std::to_string(4 + 4 * ndims) + gzip_cut_note(in.f));
  // The payload size, checked for overflow at every step and against max_bytes.
  int64_t payload = (int64_t)elem_size;
  bool overflow = false;
  std::string dims_text;
  for (int d = 0; d < ndims; ++d) {
    const uint8_t* p = dims_be + 4 * d;
    int64_t size = (int64_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3]);
    idx.shape.push_back(size);
    dims_text += (d ? " x " : "") + std::to_string(size);
    overflow = overflow || __builtin_mul_overflow(payload, size, &payload);
  }
  if (overflow || payload > max_bytes)
    throw Error(op + ": '" + path + "': the header promises " + dims_text + " elements of " +
                std::to_string(elem_size) + " bytes = " + (overflow ? "more than 2^63" : std::to_string(payload)) +
                " bytes, over the limit of " + std::to_string(max_bytes) + " (a damaged header?)");

  // An empty payload does not make any shape fine: (0, 2^32-1, 2^32-1, 2^32-1) holds no bytes, but its
  // strides would overflow. The checked product every tensor's shape passes (tensor/shape.h) decides.
  try {
    checked_numel(op.c_str(), idx.shape);
  } catch (const Error&) {
    throw Error(op + ": '" + path + "': the header's dims " + dims_text +
                " have more than 2^63-1 elements (counting the non-zero ones; a damaged header?)");
  }

  // ---- the payload, in chunks: the buffer only grows as the bytes really arrive ----
  // Each chunk is as large as what has arrived so far (at least 64 KB), so the buffer doubles with the
  // data: a header that promises 1 GB in front of a few bytes costs 64 KB, not a zeroed gigabyte.
  size_t header_size = 4 + 4 * (size_t)ndims;
  size_t total = header_size + (size_t)payload;
  idx.data_offset = header_size;
  idx.bytes.reserve(std::min(total, size_t(64) << 10));
  idx.bytes.insert(idx.bytes.end(), magic, magic + 4);
  idx.bytes.insert(idx.bytes.end(), dims_be, dims_be + 4 * ndims);
  while (idx.bytes.size() < total) {
    size_t have = idx.bytes.size();
    size_t chunk = std::min(total - have, std::max(have, size_t(64) << 10));
    if (have + chunk > idx.bytes.capacity())
      idx.bytes.reserve(std::min(total, std::max(2 * idx.bytes.capacity(), have + chunk)));
    idx.bytes.resize(have + chunk);
    size_t r = read_up_to(op, path, in.f, idx.bytes.data() + have, chunk);
    if (r < chunk)
      throw Error(op + ": '" + path + "' is truncated: the header promises " + dims_text + " elements (" +
                  std::to_string(payload) + " bytes of data), but the file holds only " +
                  std::to_string(have + r - header_size) + gzip_cut_note(in.f));
  }
  // Nothing may follow the promised bytes. Reading to the end also makes zlib check the gzip CRC.
  uint8_t extra[4096];
  size_t n_extra = 0;
  for (size_t r; (r = read_up_to(op, path, in.f, extra, sizeof extra)) > 0;) n_extra += r;
  if (n_extra > 0)
    throw Error(op + ": '" + path + "' holds " + std::to_string(n_extra) + " bytes more than the " +
                std::to_string(payload) + " bytes of data its header (" + dims_text + ") promises");
  if (!gzdirect(in.f)) check_gzip_tail(op, path);
  return idx;
}

// Big-endian loads for the multi-byte IDX types.
inline uint16_t load_be16(const uint8_t* p) { return (uint16_t)(p[0] << 8 | p[1]); }
inline uint32_t load_be32(const uint8_t* p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}
inline uint64_t load_be64(const uint8_t* p) { return (uint64_t)load_be32(p) << 32 | load_be32(p + 4); }

}  // namespace

IdxFile read_idx_file(const std::string& path, int64_t max_bytes) {
  return read_idx_impl("read_idx_file", path, max_bytes);
}

Tensor read_idx(const std::string& path) {
  IdxFile idx = read_idx_impl("read_idx", path, kIdxMaxBytes);
  int64_t n = numel_of(idx.shape);
  const uint8_t* p = idx.data();
  switch (idx.type) {
    case IdxType::Float: {
      Tensor t = empty(idx.shape, float32);
      float* out = t.data_ptr<float>();
      for (int64_t i = 0; i < n; ++i) {
        uint32_t bits = load_be32(p + 4 * i);
        std::memcpy(&out[i], &bits, 4);
      }
      return t;
    }
    case IdxType::Double: {
      Tensor t = empty(idx.shape, float64);
      double* out = t.data_ptr<double>();
      for (int64_t i = 0; i < n; ++i) {
        uint64_t bits = load_be64(p + 8 * i);
        std::memcpy(&out[i], &bits, 8);
      }
      return t;
    }
    default: {
      // The integer types, widened exactly to int64 (sbyte, short and int are two's complement).
      Tensor t = empty(idx.shape, int64);
      int64_t* out = t.data_ptr<int64_t>();
      for (int64_t i = 0; i < n; ++i) {
        switch (idx.type) {
          case IdxType::UByte: out[i] = p[i]; break;
          case IdxType::SByte: out[i] = (int8_t)p[i]; break;
          case IdxType::Short: out[i] = (int16_t)load_be16(p + 2 * i); break;
          default: out[i] = (int32_t)load_be32(p + 4 * i); break;
        }
      }
      return t;
    }
  }
}

// =====================================================================================================
// labelled images
// =====================================================================================================

namespace {

void verify_sha256(const std::string& op, const std::string& path, const IdxFile& idx, std::string expected) {
  if (expected.empty()) return;
  std::transform(expected.begin(), expected.end(), expected.begin(), [](unsigned char c) { return std::tolower(c); });
  std::string actual = io::sha256_hex(idx.bytes.data(), idx.bytes.size());
  if (actual != expected)
    throw Error(op + ": '" + path + "': the SHA-256 of its decompressed bytes is " + actual + ", expected " + expected +
                " (a damaged or different file)");
}

const char* idx_type_name(IdxType t) {
  switch (t) {
    case IdxType::UByte: return "ubyte";
    case IdxType::SByte: return "sbyte";
    case IdxType::Short: return "short";
    case IdxType::Int: return "int";
    case IdxType::Float: return "float";
    case IdxType::Double: return "double";
  }
  return "?";
}

LabeledImages load_idx_images_impl(const std::string& op, const std::string& images_path,
                                   const std::string& labels_path, Scale scale, const std::string& images_sha256,
                                   const std::string& labels_sha256) {
  IdxFile img = read_idx_impl(op, images_path, kIdxMaxBytes);
  verify_sha256(op, images_path, img, images_sha256);
  IdxFile lab = read_idx_impl(op, labels_path, kIdxMaxBytes);
  verify_sha256(op, labels_path, lab, labels_sha256);
  if (img.type != IdxType::UByte || img.shape.size() != 3)
    throw Error(op + ": '" + images_path + "' holds " + idx_type_name(img.type) + " " + shape_str(img.shape) +
                "; images must be ubyte (N,H,W)");
  if (lab.type != IdxType::UByte || lab.shape.size() != 1)
    throw Error(op + ": '" + labels_path + "' holds " + idx_type_name(lab.type) + " " + shape_str(lab.shape) +
                "; labels must be ubyte (N)");
  int64_t N = img.shape[0], H = img.shape[1], W = img.shape[2];
  if (lab.shape[0] != N)
    throw Error(op + ": " + std::to_string(N) + " images in '" + images_path + "' but " + std::to_string(lab.shape[0]) +
                " labels in '" + labels_path + "'");

  // One pass over the pixels through a 256-entry table: the conversion is a load and a store per pixel.
  // The table is computed in double and rounded once, so 0 and 255 map exactly to the interval's ends.
  float table[256];
  for (int b = 0; b < 256; ++b) table[b] = (float)(scale == Scale::ZeroOne ? b / 255.0 : 2.0 * b / 255.0 - 1.0);
  LabeledImages out;
  out.images = empty({N, 1, H, W}, float32);
  float* px = out.images.data_ptr<float>();
  const uint8_t* src = img.data();
  const int64_t n_pixels = N * H * W;
  for (int64_t i = 0; i < n_pixels; ++i) px[i] = table[src[i]];
  out.labels = empty({N}, int64);
  int64_t* y = out.labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i) y[i] = lab.data()[i];
  return out;
}

}  // namespace

LabeledImages load_idx_images(const std::string& images_path, const std::string& labels_path, Scale scale,
                              const std::string& images_sha256, const std::string& labels_sha256) {
  return load_idx_images_impl("load_idx_images", images_path, labels_path, scale, images_sha256, labels_sha256);
}

FashionMNIST load_fashion_mnist(bool train, Scale scale, const std::string& dir) {
  // SHA-256 of each file's *decompressed* bytes. Debian recompressed the files, so the .gz bytes (and
  // upstream's MD5s of them) differ from upstream's, but the content is the data set as published. These
  // digests were computed once with `zcat FILE | sha256sum`, from Debian 12's dataset-fashion-mnist
  // 0.0~git20200523.55506a9-1, and agree with io::Sha256 (tests/data/test_data.cpp checks the loader).
  struct File {
    const char* name;
    const char* sha256;
  };
  static const File kTrainImages{"train-images-idx3-ubyte.gz",
                                 "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"};
  static const File kTrainLabels{"train-labels-idx1-ubyte.gz",
                                 "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"};
  static const File kTestImages{"t10k-images-idx3-ubyte.gz",
                                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"};
  static const File kTestLabels{"t10k-labels-idx1-ubyte.gz",
                                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"};
  const File& images = train ? kTrainImages : kTestImages;
  const File& labels = train ? kTrainLabels : kTestLabels;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw Error("load_fashion_mnist: no directory '" + dir + "' (install the Debian package dataset-fashion-mnist)");
  return load_idx_images_impl("load_fashion_mnist", (fs::path(dir) / images.name).string(),
                              (fs::path(dir) / labels.name).string(), scale, images.sha256, labels.sha256);
}

// =====================================================================================================
// the fortunes corpus
// =====================================================================================================

void CharCorpus::build_vocab() {
  bool seen[256] = {};
  for (char c : text) seen[(unsigned char)c] = true;
  vocab.clear();
  id_of.fill(-1);
  for (int b = 0; b < 256; ++b)
    if (seen[b]) {
      id_of[b] = (int32_t)vocab.size();
      vocab.push_back((char)b);
    }
}

Tensor CharCorpus::encode(const std::string& s) const {
  Tensor ids = empty({(int64_t)s.size()}, int64);
  int64_t* p = ids.data_ptr<int64_t>();
  for (size_t i = 0; i < s.size(); ++i) {
    int32_t id = id_of[(unsigned char)s[i]];
    if (id < 0)
      throw Error("CharCorpus::encode: byte " + hex_byte((uint8_t)s[i]) + " at position " + std::to_string(i) +
                  " is not in the vocabulary of " + std::to_string(vocab.size()) + " bytes");
    p[i] = id;
  }
  return ids;
}

std::string CharCorpus::decode(const Tensor& ids) const {
  if (ids.dtype() != int64)
    throw Error(std::string("CharCorpus::decode: expected int64 ids, got ") + dtype_name(ids.dtype()));
  std::vector<int64_t> v = ids.to_vector<int64_t>();
  std::string s(v.size(), '\0');
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] < 0 || v[i] >= (int64_t)vocab.size())
      throw Error("CharCorpus::decode: id " + std::to_string(v[i]) + " at position " + std::to_string(i) +
                  " is outside the vocabulary 0.." + std::to_string((int64_t)vocab.size() - 1));
    s[i] = vocab[v[i]];
  }
  return s;
}

namespace {

// The fortunes of one file: the texts between lines that hold only "%", each ending in a newline.
void split_fortunes(const std::string& content, std::vector<std::string>& fortunes) {
  std::string current;
  size_t pos = 0;
  while (pos < content.size()) {
    size_t eol = content.find('\n', pos);
    size_t end = eol == std::string::npos ? content.size() : eol;
    std::string_view line(content.data() + pos, end - pos);
    if (line == "%") {
      if (!current.empty()) fortunes.push_back(std::move(current));
      current.clear();
    } else {
      current.append(line);
      current += '\n';
    }
    pos = end + 1;
  }
  if (!current.empty()) fortunes.push_back(std::move(current));
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

CharCorpus load_fortunes(double val_fraction, const std::string& dir) {
  if (!(val_fraction >= 0.0 && val_fraction < 1.0))
    throw Error("load_fortunes: val_fraction must be in [0, 1), got " + std::to_string(val_fraction));
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw Error("load_fortunes: no directory '" + dir + "' (install the Debian package fortunes)");

  // The plain-text files, by name. symlink_status does not follow links: every *.u8 in Debian's package
  // is a symlink to the file of the same name without .u8, so reading it would count that text twice.
  std::vector<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (!fs::is_regular_file(e.symlink_status())) continue;  // symlinks and sub-folders (off/)
    if (name.empty() || name[0] == '.' || ends_with(name, ".dat") || ends_with(name, ".u8")) continue;
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  if (names.empty()) throw Error("load_fortunes: no fortune files in '" + dir + "'");

  std::vector<std::string> fortunes;
  for (const std::string& name : names) {
    std::ifstream f(fs::path(dir) / name, std::ios::binary);
    std::stringstream content;
    content << f.rdbuf();
    if (!f) throw Error("load_fortunes: cannot read '" + (fs::path(dir) / name).string() + "'");
    split_fortunes(content.str(), fortunes);
  }
  if (fortunes.empty()) throw Error("load_fortunes: the files in '" + dir + "' hold no fortunes");

  // A fixed-seed shuffle picks the validation fortunes, so val samples every file, not just the last few.
  const int64_t F = (int64_t)fortunes.size();
  const int64_t n_val = std::llround(val_fraction * (double)F);
  if (n_val >= F)
    throw Error("load_fortunes: val_fraction " + std::to_string(val_fraction) + " leaves no training fortunes out of " +
                std::to_string(F));
  Generator gen(0);
  std::vector<int64_t> perm = random_permutation(F, gen);
  std::vector<bool> is_val(F, false);
  for (int64_t i = 0; i < n_val; ++i) is_val[perm[i]] = true;

  CharCorpus corpus;
  std::string train_text, val_text;
  for (int64_t i = 0; i < F; ++i) {
    std::string entry = fortunes[i] + "%\n";
    corpus.text += entry;
    (is_val[i] ? val_text : train_text) += entry;
  }
  corpus.build_vocab();
  corpus.train = corpus.encode(train_text);
  corpus.val = corpus.encode(val_text);
  return corpus;
}

// =====================================================================================================
// synthetic data
// =====================================================================================================

std::vector<int64_t> random_permutation(int64_t n, Generator& gen) {
  if (n < 0) throw Error("random_permutation: n must be >= 0, got " + std::to_string(n));
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    uint64_t hi = gen.next_u32(), lo = gen.next_u32();
    uint64_t j = ((hi << 32) | lo) % (uint64_t)(i + 1);
    std::swap(p[i], p[j]);
  }
  return p;
}

Mixture mixture_of_gaussians(int64_t n, int64_t k, int64_t dim, uint64_t seed, double spread) {
  if (k < 1 || n < k || dim < 1)
    throw Error("mixture_of_gaussians: need 1 <= k <= n and dim >= 1, got n=" + std::to_string(n) +
                " k=" + std::to_string(k) + " dim=" + std::to_string(dim));
  if (!(spread >= 0.0) || !std::isfinite(spread))
    throw Error("mixture_of_gaussians: spread must be finite and >= 0, got " + std::to_string(spread));
  Generator gen(seed);
  Mixture m;
  m.centres = randn({k, dim}, float32, &gen) * spread;
  // Balanced labels (i mod k), placed in a random order.
  std::vector<int64_t> perm = random_permutation(n, gen);
  std::vector<int64_t> labels(n);
  for (int64_t i = 0; i < n; ++i) labels[perm[i]] = i % k;
  m.labels = from_vector(labels, Shape{n});
  m.points = index_select(m.centres, 0, m.labels) + randn({n, dim}, float32, &gen);
  return m;
}

namespace {

// logits[j] = q . V_j / sqrt(F) for every item j; the item `masked` (if >= 0) gets -inf.
// V is (n_items, F) row-major, in double.
void item_logits(const double* q, const std::vector<double>& V, int64_t n_items, int64_t F, int64_t masked,
                 double* logits) {
  const double inv_sqrt_f = 1.0 / std::sqrt((double)F);
  for (int64_t j = 0; j < n_items; ++j) {
    double dot = 0;
    for (int64_t f = 0; f < F; ++f) dot += q[f] * V[j * F + f];
    logits[j] = dot * inv_sqrt_f;
  }
  if (masked >= 0) logits[masked] = -INFINITY;
}

// q = U_user + V_prev (or U_user alone when prev < 0): the query of the session model in data.h.
void session_query(const std::vector<double>& U, const std::vector<double>& V, int64_t F, int64_t user, int64_t prev,
                   double* q) {
  for (int64_t f = 0; f < F; ++f) q[f] = U[user * F + f] + (prev >= 0 ? V[prev * F + f] : 0.0);
}

}  // namespace

Sessions session_sequences(int64_t n_users, int64_t n_items, int64_t seq_len, int64_t n_factors, uint64_t seed) {
  if (n_users < 1 || n_items < 2 || seq_len < 1 || n_factors < 1)
    throw Error("session_sequences: need n_users >= 1, n_items >= 2, seq_len >= 1, n_factors >= 1, got " +
                std::to_string(n_users) + ", " + std::to_string(n_items) + ", " + std::to_string(seq_len) + ", " +
                std::to_string(n_factors));
  const int64_t F = n_factors;
  Generator gen(seed);
  Sessions s;
  s.user_factors = randn({n_users, F}, float32, &gen);
  s.item_factors = randn({n_items, F}, float32, &gen);
  // The model runs in double, from the float32 factors as stored, exactly as next_item_logits does.
  std::vector<double> U = s.user_factors.to_vector<double>(), V = s.item_factors.to_vector<double>();
  std::vector<double> q(F), logits(n_items);
  std::vector<int64_t> seq(n_users * seq_len);
  for (int64_t u = 0; u < n_users; ++u) {
    int64_t prev = -1;
    for (int64_t t = 0; t < seq_len; ++t) {
      session_query(U, V, F, u, prev, q.data());
      item_logits(q.data(), V, n_items, F, prev, logits.data());
      // Sample from softmax(logits) by inverting its CDF at one uniform draw (shifted by the max for exp).
      double mx = *std::max_element(logits.begin(), logits.end());
      double total = 0;
      for (double& l : logits) total += (l = std::exp(l - mx));  // logits now holds unnormalised probabilities
      double target = gen.next_double() * total, cum = 0;
      int64_t pick = -1;
      for (int64_t j = 0; j < n_items; ++j) {
        if (logits[j] == 0) continue;  // the masked repeat (exp(-inf) = 0) is never picked
        pick = j;
        cum += logits[j];
        if (cum > target) break;  // rounding can leave target just above the sum: then the last item wins
      }
      seq[u * seq_len + t] = prev = pick;
    }
  }
  s.sequences = from_vector(seq, Shape{n_users, seq_len});
  return s;
}

Tensor next_item_logits(const Sessions& s, const Tensor& users, const Tensor& prev_items) {
  const int64_t n_users = s.user_factors.size(0), n_items = s.item_factors.size(0), F = s.item_factors.size(1);
  if (users.dtype() != int64 || prev_items.dtype() != int64 || users.dim() != 1 || users.shape() != prev_items.shape())
    throw Error("next_item_logits: users and prev_items must be int64 of the same shape (B), got " +
                std::string(dtype_name(users.dtype())) + " " + shape_str(users.shape()) + " and " +
                dtype_name(prev_items.dtype()) + " " + shape_str(prev_items.shape()));
  std::vector<double> U = s.user_factors.to_vector<double>(), V = s.item_factors.to_vector<double>();
  std::vector<int64_t> us = users.to_vector<int64_t>(), ps = prev_items.to_vector<int64_t>();
  const int64_t B = (int64_t)us.size();
  Tensor out = empty({B, n_items}, float64);
  double* o = out.data_ptr<double>();
  std::vector<double> q(F);
  for (int64_t b = 0; b < B; ++b) {
    if (us[b] < 0 || us[b] >= n_users || ps[b] < -1 || ps[b] >= n_items)
      throw Error("next_item_logits: row " + std::to_string(b) + " has user " + std::to_string(us[b]) + " (of " +
                  std::to_string(n_users) + ") and prev item " + std::to_string(ps[b]) + " (of " +
                  std::to_string(n_items) + ", or -1)");
    session_query(U, V, F, us[b], ps[b], q.data());
    item_logits(q.data(), V, n_items, F, ps[b], o + b * n_items);
  }
  return out;
}

// =====================================================================================================
// MovieLens
// =====================================================================================================

UserSequences load_movielens(const std::string& path, int64_t min_length) {
  if (min_length < 1) throw Error("load_movielens: min_length must be >= 1, got " + std::to_string(min_length));
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("load_movielens: cannot open '" + path + "'");
  struct Rating { int64_t user, item, time, line; };
  std::vector<Rating> ratings;
  std::string line, sep;
  for (int64_t n = 1; std::getline(f, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (sep.empty()) sep = line.find("::") != std::string::npos ? "::" : "\t";  // ratings.dat, else u.data
    // Four fields: user, item, rating (not used), timestamp; all integers.
    std::vector<int64_t> fields;
    size_t start = 0;
    bool ok = true;
    for (int i = 0; i < 4 && ok; ++i) {
      size_t end = i < 3 ? line.find(sep, start) : line.size();
      if (end == std::string::npos) { ok = false; break; }
      std::string field = line.substr(start, end - start);
      char* stop = nullptr;
      errno = 0;
      long long v = std::strtoll(field.c_str(), &stop, 10);
      ok = !field.empty() && *stop == 0 && errno == 0;
      fields.push_back(v);
      start = end + sep.size();
    }
    if (!ok)
      throw Error("load_movielens: '" + path + "' line " + std::to_string(n) + ": expected user" +
                  (sep == "::" ? "::item::rating::timestamp" : "<TAB>item<TAB>rating<TAB>timestamp") +
                  " as integers, got '" + line.substr(0, 80) + "'");
    ratings.push_back({fields[0], fields[1], fields[3], n});
  }
  if (ratings.empty()) throw Error("load_movielens: '" + path + "' holds no ratings");

  // Group by user (ids ascending), each user's ratings by time, then by line.
  std::stable_sort(ratings.begin(), ratings.end(), [](const Rating& a, const Rating& b) {
    return a.user != b.user ? a.user < b.user : a.time < b.time;
  });
  UserSequences out;
  std::vector<std::vector<int64_t>> raw;  // per kept user, the file's item ids
  for (size_t i = 0; i < ratings.size();) {
    size_t j = i;
    while (j < ratings.size() && ratings[j].user == ratings[i].user) ++j;
    if ((int64_t)(j - i) >= min_length) {
      out.user_ids.push_back(ratings[i].user);
      raw.emplace_back();
      for (size_t r = i; r < j; ++r) raw.back().push_back(ratings[r].item);
    }
    i = j;
  }
  if (raw.empty())
    throw Error("load_movielens: no user of '" + path + "' has min_length " + std::to_string(min_length) +
                " ratings");
  for (const auto& seq : raw) out.item_ids.insert(out.item_ids.end(), seq.begin(), seq.end());
  std::sort(out.item_ids.begin(), out.item_ids.end());
  out.item_ids.erase(std::unique(out.item_ids.begin(), out.item_ids.end()), out.item_ids.end());
  out.n_items = (int64_t)out.item_ids.size();
  for (auto& seq : raw) {
    for (int64_t& item : seq)
      item = std::lower_bound(out.item_ids.begin(), out.item_ids.end(), item) - out.item_ids.begin();
    out.items.push_back(std::move(seq));
  }
  return out;
}

// =====================================================================================================
// TensorDataset and collate
// =====================================================================================================

int64_t TensorDataset::size() const {
  if (tensors.empty()) throw Error("TensorDataset: holds no tensors");
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!tensors[i].defined() || tensors[i].dim() == 0)
      throw Error("TensorDataset: tensor " + std::to_string(i) +
                  " is undefined or 0-d; each needs a first dim of rows");
    if (tensors[i].size(0) != tensors[0].size(0))
      throw Error("TensorDataset: tensor " + std::to_string(i) + " has " + std::to_string(tensors[i].size(0)) +
                  " rows " + shape_str(tensors[i].shape()) + " but tensor 0 has " + std::to_string(tensors[0].size(0)) +
                  " " + shape_str(tensors[0].shape()));
  }
  return tensors[0].size(0);
}

std::vector<Tensor> TensorDataset::get_batch(const Tensor& indices) const {
  size();  // validates
  std::vector<Tensor> out;
  out.reserve(tensors.size());
  for (const Tensor& t : tensors) out.push_back(index_select(t, 0, indices));
  return out;
}

std::vector<Tensor> TensorDataset::get(int64_t i) const {
  int64_t n = size();
  if (i < 0 || i >= n)
    throw Error("TensorDataset::get: index " + std::to_string(i) + " out of range for " + std::to_string(n) + " rows");
  std::vector<Tensor> out;
  out.reserve(tensors.size());
  for (const Tensor& t : tensors) out.push_back(t.select(0, i));
  return out;
}

Tensor collate(const std::vector<Tensor>& samples) {
  if (samples.empty()) throw Error("collate: no samples");
  return stack(samples, 0);
}

std::vector<Tensor> collate(const std::vector<std::vector<Tensor>>& samples) {
  if (samples.empty()) throw Error("collate: no samples");
  const size_t parts = samples[0].size();
  std::vector<Tensor> out;
  for (size_t c = 0; c < parts; ++c) {
    std::vector<Tensor> column;
    column.reserve(samples.size());
    for (size_t i = 0; i < samples.size(); ++i) {
      if (samples[i].size() != parts)
        throw Error("collate: sample " + std::to_string(i) + " has " + std::to_string(samples[i].size()) +
                    " tensors but sample 0 has " + std::to_string(parts));
      column.push_back(samples[i][c]);
    }
    out.push_back(stack(column, 0));
  }
  return out;
}

}  // namespace heed::data
