// Tests for data/data.h: the IDX reader on well-formed and malformed files (raw and gzipped),
// Fashion-MNIST, the fortunes corpus, the synthetic sets, and the DataLoader.
#include "data/data.h"

#include <doctest/doctest.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <ctime>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

using namespace heed;
using namespace heed::data;
namespace fs = std::filesystem;

namespace {

// A fresh folder under /tmp for one test case, removed at the end.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("heed_test_data_" + tag + "_" + std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

using Bytes = std::vector<uint8_t>;

void write_raw(const std::string& path, const Bytes& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), (std::streamsize)b.size());
}

void write_gz(const std::string& path, const Bytes& b) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  if (!b.empty()) REQUIRE(gzwrite(f, b.data(), (unsigned)b.size()) == (int)b.size());
  gzclose(f);
}

Bytes read_raw(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

// An IDX header: 00 00 type ndims, then each dim as 32-bit big-endian.
Bytes idx_header(uint8_t type, const std::vector<uint32_t>& dims) {
  Bytes b = {0, 0, type, (uint8_t)dims.size()};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back((uint8_t)(d >> s));
  return b;
}

Bytes cat_bytes(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// ---- IDX files ---------------------------------------------------------------------------------------

TEST_CASE("data: read_idx decodes every IDX type from raw and gzipped files") {
  TempDir dir("idx_types");
  struct Case {
    uint8_t type;
    Bytes payload;
    std::vector<double> expect;
    DType dtype;
  };
  std::vector<Case> cases = {
      {0x08, {0, 1, 127, 128, 255, 7}, {0, 1, 127, 128, 255, 7}, int64},
      {0x09, {0, 1, 127, 128, 255, 7}, {0, 1, 127, -128, -1, 7}, int64},
      {0x0B,
       {0x00, 0x01, 0xFF, 0xFE, 0x7F, 0xFF, 0x80, 0x00, 0x01, 0x00, 0x00, 0x00},
       {1, -2, 32767, -32768, 256, 0},
       int64},
      // big-endian float32 1.5, -2, 0.25, 1024, 0, -0.5
      {0x0D,
       {0x3F, 0xC0, 0, 0, 0xC0, 0, 0, 0, 0x3E, 0x80, 0, 0, 0x44, 0x80, 0, 0, 0, 0, 0, 0, 0xBF, 0, 0, 0},
       {1.5, -2, 0.25, 1024, 0, -0.5},
       float32},
  };
  // int32: 1, -1, 65536, -2147483648, 2147483647, 300
  Case ints{0x0C, {}, {1, -1, 65536, -2147483648.0, 2147483647.0, 300}, int64};
  for (double v : ints.expect) {
    uint32_t u = (uint32_t)(int32_t)(int64_t)v;
    for (int s = 24; s >= 0; s -= 8) ints.payload.push_back((uint8_t)(u >> s));
  }
  cases.push_back(ints);
  // float64: the bits of each value, big-endian
  Case doubles{0x0E, {}, {3.141592653589793, -1e-300, 6.02214076e23, 0, 1, -7.25}, float64};
  for (double v : doubles.expect) {
    uint64_t u;
    std::memcpy(&u, &v, 8);
    for (int s = 56; s >= 0; s -= 8) doubles.payload.push_back((uint8_t)(u >> s));
  }
  cases.push_back(doubles);

  for (const Case& c : cases)
    for (bool gz : {false, true}) {
      CAPTURE((int)c.type);
      CAPTURE(gz);
      std::string path = dir.file(gz ? "t.idx.gz" : "t.idx");
      (gz ? write_gz : write_raw)(path, cat_bytes(idx_header(c.type, {2, 3}), c.payload));
      Tensor t = read_idx(path);
      CHECK(t.shape() == Shape{2, 3});
      CHECK(t.dtype() == c.dtype);
      CHECK(t.to_vector<double>() == c.expect);
      IdxFile f = read_idx_file(path);
      CHECK(f.type == static_cast<IdxType>(c.type));
      CHECK(f.data_offset == 4 + 4 * 2);
      CHECK(f.bytes.size() == 12 + c.payload.size());
    }
}

TEST_CASE("data: read_idx rejects malformed files with a clear error before allocating") {
  TempDir dir("idx_bad");
  const Bytes good_payload(100, 42);
  struct Case {
    const char* name;
    Bytes bytes;
    const char* message;
  };
  std::vector<Case> cases = {
      {"empty file", {}, "needs at least 4"},
      {"two bytes", {0, 0}, "needs at least 4"},
      {"bad magic", cat_bytes({1, 0, 0x08, 1, 0, 0, 0, 1}, {9}), "bad magic 0x01 0x00"},
      {"unknown type", cat_bytes(idx_header(0x07, {1}), {9}), "unknown IDX type code 0x07"},
      {"zero dims", {0, 0, 0x08, 0}, "declares 0 dims"},
      {"five dims", cat_bytes(idx_header(0x08, {1, 1, 1, 1, 1}), {9}), "declares 5 dims"},
      {"header cut inside the dims", {0, 0, 0x08, 3, 0, 0, 0, 10, 0, 0}, "truncated inside its header"},
      // 100000 x 100000 x 100 bytes = 10^12: refused from the header alone.
      {"absurd dims", idx_header(0x08, {100000, 100000, 100}), "= 1000000000000 bytes, over the limit"},
      // (2^32-1)^4 * 8 overflows int64.
      {"overflowing dims", idx_header(0x0E, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}), "more than 2^63"},
      {"truncated payload", cat_bytes(idx_header(0x08, {10, 10}), Bytes(50, 1)), "the file holds only 50"},
      {"truncated multi-byte payload", cat_bytes(idx_header(0x0C, {10}), Bytes(39, 1)), "the file holds only 39"},
      {"extra bytes", cat_bytes(idx_header(0x08, {10, 10}), Bytes(107, 1)), "holds 7 bytes more than the 100"},
  };
  for (const Case& c : cases)
    for (bool gz : {false, true}) {
      CAPTURE(c.name);
      CAPTURE(gz);
      std::string path = dir.file(gz ? "bad.idx.gz" : "bad.idx");
      (gz ? write_gz : write_raw)(path, c.bytes);
      CHECK_THROWS_WITH_AS(read_idx(path), doctest::Contains(c.message), Error);
      CHECK_THROWS_WITH_AS(read_idx(path), doctest::Contains(("read_idx: '" + path + "'").c_str()), Error);
    }

  // A header promising 200 MB (under the 1 GiB limit) over a 12-byte file: the buffer grows only with the
  // bytes that arrive, so this fails as truncated without a 200 MB allocation.
  write_raw(dir.file("lying.idx"), idx_header(0x08, {200, 1000, 1000}));
  CHECK_THROWS_WITH_AS(read_idx(dir.file("lying.idx")), doctest::Contains("the file holds only 0"), Error);
  // max_bytes is the caller's to lower.
  write_raw(dir.file("ok.idx"), cat_bytes(idx_header(0x08, {10, 10}), good_payload));
  CHECK(read_idx_file(dir.file("ok.idx")).shape == Shape{10, 10});
  CHECK_THROWS_WITH_AS(read_idx_file(dir.file("ok.idx"), 99), doctest::Contains("over the limit of 99"), Error);

  // Damaged gzip streams: cut short, and with a corrupted byte in the compressed data.
  write_gz(dir.file("full.gz"), cat_bytes(idx_header(0x08, {100, 100}), Bytes(10000, 3)));
  Bytes gz = read_raw(dir.file("full.gz"));
  REQUIRE(gz.size() > 40);
  write_raw(dir.file("cut.gz"), Bytes(gz.begin(), gz.begin() + (long)gz.size() / 2));
  CHECK_THROWS_WITH_AS(read_idx(dir.file("cut.gz")), doctest::Contains("(the gzip stream itself is cut short)"), Error);
  Bytes flipped = gz;
  flipped[gz.size() - 6] ^= 0xFF;  // inside the CRC-32 trailer: the data inflates, the check fails
  write_raw(dir.file("crc.gz"), flipped);
  CHECK_THROWS_WITH_AS(read_idx(dir.file("crc.gz")),
                       doctest::Contains("cannot read: incorrect data check (a damaged gzip file?)"), Error);
  // Incompressible data cut at 60%: most of the payload inflates before the stream runs out.
  Bytes noisy = idx_header(0x08, {100, 100});
  Generator gen(9);
  for (int i = 0; i < 10000; ++i) noisy.push_back((uint8_t)gen.next_u32());
  write_gz(dir.file("noisy.gz"), noisy);
  Bytes noisy_gz = read_raw(dir.file("noisy.gz"));
  write_raw(dir.file("noisy_cut.gz"), Bytes(noisy_gz.begin(), noisy_gz.begin() + (long)noisy_gz.size() * 6 / 10));
  CHECK_THROWS_WITH_AS(read_idx(dir.file("noisy_cut.gz")), doctest::Contains("but the file holds only"), Error);
  CHECK_THROWS_WITH_AS(read_idx(dir.file("noisy_cut.gz")), doctest::Contains("(the gzip stream itself is cut short)"),
                       Error);
  noisy_gz[noisy_gz.size() / 2] ^= 0x01;  // one flipped bit in the middle of the data
  write_raw(dir.file("noisy_bit.gz"), noisy_gz);
  CHECK_THROWS_WITH_AS(read_idx(dir.file("noisy_bit.gz")), doctest::Contains("cannot read: "), Error);

  CHECK_THROWS_WITH_AS(read_idx(dir.file("missing.idx")), doctest::Contains("no such file"), Error);
  CHECK_THROWS_WITH_AS(read_idx(dir.path.string()), doctest::Contains("is a directory"), Error);
}

// ---- labelled images ---------------------------------------------------------------------------------

TEST_CASE("data: load_idx_images scales pixels and checks shapes and checksums") {
  TempDir dir("idx_images");
  // Three 2x2 images and their labels.
  Bytes pixels = {0, 255, 51, 102, 1, 2, 3, 4, 255, 255, 0, 0};
  Bytes img = cat_bytes(idx_header(0x08, {3, 2, 2}), pixels);
  Bytes lab = cat_bytes(idx_header(0x08, {3}), {7, 0, 9});
  write_gz(dir.file("img.gz"), img);
  write_raw(dir.file("lab"), lab);

  LabeledImages d = load_idx_images(dir.file("img.gz"), dir.file("lab"));
  CHECK(d.images.shape() == Shape{3, 1, 2, 2});
  CHECK(d.images.dtype() == float32);
  CHECK(d.labels.to_vector<int64_t>() == std::vector<int64_t>{7, 0, 9});
  std::vector<float> v = d.images.to_vector<float>();
  for (size_t i = 0; i < pixels.size(); ++i) CHECK(v[i] == (float)(pixels[i] / 255.0));
  CHECK(v[0] == 0.0f);
  CHECK(v[1] == 1.0f);
  std::vector<float> w =
      load_idx_images(dir.file("img.gz"), dir.file("lab"), Scale::MinusOneOne).images.to_vector<float>();
  for (size_t i = 0; i < pixels.size(); ++i) CHECK(w[i] == (float)(2.0 * pixels[i] / 255.0 - 1.0));
  CHECK(w[0] == -1.0f);
  CHECK(w[1] == 1.0f);

  // Checksums cover the decompressed bytes, header included; upper-case hex is accepted.
  std::string img_sha = io::sha256_hex(img.data(), img.size()), lab_sha = io::sha256_hex(lab.data(), lab.size());
  std::string upper = img_sha;
  for (char& c : upper) c = (char)std::toupper((unsigned char)c);
  CHECK(load_idx_images(dir.file("img.gz"), dir.file("lab"), Scale::ZeroOne, upper, lab_sha).labels.numel() == 3);
  std::string wrong(64, '0');
  CHECK_THROWS_WITH_AS(
      load_idx_images(dir.file("img.gz"), dir.file("lab"), Scale::ZeroOne, wrong),
      doctest::Contains(("SHA-256 of its decompressed bytes is " + img_sha + ", expected " + wrong).c_str()), Error);
  CHECK_THROWS_WITH_AS(load_idx_images(dir.file("img.gz"), dir.file("lab"), Scale::ZeroOne, "", wrong),
                       doctest::Contains(("'" + dir.file("lab") + "'").c_str()), Error);

  // Shapes and types: labels as images, a count mismatch, 16-bit pixels.
  CHECK_THROWS_WITH_AS(load_idx_images(dir.file("lab"), dir.file("lab")),
                       doctest::Contains("images must be ubyte (N,H,W)"), Error);
  CHECK_THROWS_WITH_AS(load_idx_images(dir.file("img.gz"), dir.file("img.gz")),
                       doctest::Contains("labels must be ubyte (N)"), Error);
  write_raw(dir.file("lab2"), cat_bytes(idx_header(0x08, {2}), {1, 2}));
  CHECK_THROWS_WITH_AS(load_idx_images(dir.file("img.gz"), dir.file("lab2")),
                       doctest::Contains("load_idx_images: 3 images in"), Error);
  write_raw(dir.file("short"), cat_bytes(idx_header(0x0B, {3, 1, 1}), Bytes(6, 0)));
  CHECK_THROWS_WITH_AS(load_idx_images(dir.file("short"), dir.file("lab")), doctest::Contains("holds short (3,1,1)"),
                       Error);
}

TEST_CASE("data: load_fashion_mnist loads both splits and verifies their checksums") {
  auto t0 = std::chrono::steady_clock::now();
  std::clock_t cpu0 = std::clock();
  FashionMNIST train = load_fashion_mnist(true);
  double train_seconds = seconds_since(t0), cpu_seconds = (double)(std::clock() - cpu0) / CLOCKS_PER_SEC;
  MESSAGE("load_fashion_mnist(train): " << train_seconds << " s wall, " << cpu_seconds
                                        << " s CPU for 60000 images (decompress, SHA-256, convert)");
  CHECK(train.images.shape() == Shape{60000, 1, 28, 28});
  CHECK(train.labels.shape() == Shape{60000});
  // Fashion-MNIST is balanced: 6000 training and 1000 test images per class.
  std::vector<int64_t> counts(10, 0);
  for (int64_t y : train.labels.to_vector<int64_t>()) {
    REQUIRE(y >= 0);
    REQUIRE(y < 10);
    counts[y]++;
  }
  CHECK(counts == std::vector<int64_t>(10, 6000));
  // The well-known pixel statistics of the training set: mean 0.2860, std 0.3530.
  CHECK(min(train.images).item() == 0.0);
  CHECK(max(train.images).item() == 1.0);
  std::vector<float> px = train.images.to_vector<float>();
  double sum = 0, sq = 0;
  for (float p : px) sum += p, sq += (double)p * p;
  double mean = sum / (double)px.size(), stdev = std::sqrt(sq / (double)px.size() - mean * mean);
  CHECK(mean == doctest::Approx(0.2860).epsilon(0.001));
  CHECK(stdev == doctest::Approx(0.3530).epsilon(0.001));
  // The first training image is an ankle boot (label 9), as in upstream's README figures.
  CHECK(std::string(fashion_mnist_classes[train.labels.to_vector<int64_t>()[0]]) == "Ankle boot");

  FashionMNIST test = load_fashion_mnist(false, Scale::MinusOneOne);
  CHECK(test.images.shape() == Shape{10000, 1, 28, 28});
  std::vector<int64_t> test_counts(10, 0);
  for (int64_t y : test.labels.to_vector<int64_t>()) test_counts.at(y)++;
  CHECK(test_counts == std::vector<int64_t>(10, 1000));
  CHECK(min(test.images).item() == -1.0);
  CHECK(max(test.images).item() == 1.0);

  CHECK_THROWS_WITH_AS(load_fashion_mnist(true, Scale::ZeroOne, "/nonexistent/fashion"),
                       doctest::Contains("load_fashion_mnist: no directory '/nonexistent/fashion'"), Error);
}

// ---- fortunes ----------------------------------------------------------------------------------------

TEST_CASE("data: load_fortunes builds a byte vocabulary and a deterministic split") {
  auto t0 = std::chrono::steady_clock::now();
  CharCorpus c = load_fortunes();
  MESSAGE("load_fortunes: " << c.text.size() << " bytes of text, " << c.vocab.size() << " symbols, train "
                            << c.train.numel() << " / val " << c.val.numel() << " tokens, " << seconds_since(t0)
                            << " s");
  CHECK(c.text.size() > 2000000);
  CHECK(c.text.size() < 3000000);
  // Vocabulary: sorted unsigned bytes, unique, and exactly the bytes of the text.
  for (size_t i = 1; i < c.vocab.size(); ++i) CHECK((unsigned char)c.vocab[i - 1] < (unsigned char)c.vocab[i]);
  CHECK(c.vocab.size() > 90);
  CHECK(c.vocab.size() < 256);
  CHECK(std::string(c.vocab.begin(), c.vocab.end()).find('\0') == std::string::npos);  // no binary .dat bytes
  // Train and val partition the text, fortune by fortune; val holds about 10% of it.
  CHECK(c.train.numel() + c.val.numel() == (int64_t)c.text.size());
  double val_share = (double)c.val.numel() / (double)c.text.size();
  CHECK(val_share > 0.07);
  CHECK(val_share < 0.13);
  std::string val = c.decode(c.val);
  CHECK(val.substr(val.size() - 2) == "%\n");
  // Whole fortunes move: val's first fortune is a fortune of the text (preceded by a "%" line or first).
  std::string first_val = val.substr(0, val.find("\n%\n") + 3);
  CHECK((c.text.find("%\n" + first_val) != std::string::npos || c.text.rfind(first_val, 0) == 0));
  // Round trip.
  std::string sample = c.text.substr(12345, 300);
  CHECK(c.decode(c.encode(sample)) == sample);
  CHECK(c.encode(sample).dtype() == int64);
  // Deterministic: a second load gives the same split.
  CharCorpus again = load_fortunes();
  CHECK(again.text == c.text);
  CHECK(again.val.to_vector<int64_t>() == c.val.to_vector<int64_t>());

  // Errors.
  CHECK_THROWS_WITH_AS(c.encode(std::string(1, '\0')), doctest::Contains("CharCorpus::encode: byte 0x00 at position 0"),
                       Error);
  CHECK_THROWS_WITH_AS(c.decode(from_vector<int64_t>({0, 1000}, Shape{2})), doctest::Contains("id 1000 at position 1"),
                       Error);
  CHECK_THROWS_WITH_AS(c.decode(zeros({2})), doctest::Contains("expected int64"), Error);
  CHECK_THROWS_WITH_AS(load_fortunes(1.0), doctest::Contains("val_fraction must be in [0, 1)"), Error);
  CHECK_THROWS_WITH_AS(load_fortunes(0.1, "/nonexistent/fortunes"), doctest::Contains("load_fortunes: no directory"),
                       Error);
}

TEST_CASE("data: load_fortunes reads plain files only and splits on percent lines") {
  TempDir dir("fortunes");
  std::ofstream(dir.file("b")) << "second file\n%\n";
  std::ofstream(dir.file("a")) << "one\ntwo\n%\nthree\n%\n%\nfour";  // an empty fortune, no final newline
  std::ofstream(dir.file("a.dat")) << std::string("\0\0\0\2binary", 10);
  fs::create_symlink("a", dir.path / "a.u8");
  fs::create_symlink("b", dir.path / "c");  // any symlink is skipped
  fs::create_directories(dir.path / "off");
  std::ofstream(dir.file("off/rude")) << "not read\n";
  CharCorpus c = load_fortunes(0.0, dir.path.string());
  CHECK(c.text == "one\ntwo\n%\nthree\n%\nfour\n%\nsecond file\n%\n");
  CHECK(c.decode(c.train) == c.text);
  CHECK(c.val.numel() == 0);
  // With 4 fortunes, val_fraction 0.5 moves 2 of them to val; both parts keep the file order.
  CharCorpus half = load_fortunes(0.5, dir.path.string());
  std::string train = half.decode(half.train), val = half.decode(half.val);
  CHECK(train.size() + val.size() == half.text.size());
  CHECK(std::count(train.begin(), train.end(), '%') == 2);
  CHECK(std::count(val.begin(), val.end(), '%') == 2);
  CHECK_THROWS_WITH_AS(load_fortunes(0.9, dir.path.string()), doctest::Contains("leaves no training fortunes out of 4"),
                       Error);
  TempDir empty("fortunes_empty");
  CHECK_THROWS_WITH_AS(load_fortunes(0.1, empty.path.string()), doctest::Contains("no fortune files"), Error);
}

// ---- synthetic data ----------------------------------------------------------------------------------

TEST_CASE("data: random_permutation is a permutation and reproducible") {
  Generator g1(5), g2(5), g3(6);
  std::vector<int64_t> p = random_permutation(1000, g1);
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) CHECK(sorted[i] == i);
  CHECK(random_permutation(1000, g2) == p);
  CHECK(random_permutation(1000, g3) != p);
  CHECK(random_permutation(0, g1).empty());
  // All 6 orders of 3 items come up equally often: 6000 draws, 1000 expected each, sd ~29.
  std::map<std::vector<int64_t>, int> seen;
  Generator g(1);
  for (int i = 0; i < 6000; ++i) seen[random_permutation(3, g)]++;
  CHECK(seen.size() == 6);
  for (auto& [perm, count] : seen) CHECK(std::abs(count - 1000) < 150);
  CHECK_THROWS_AS(random_permutation(-1, g), Error);
}

TEST_CASE("data: mixture_of_gaussians has balanced known clusters") {
  Mixture m = mixture_of_gaussians(1000, 4, 8, 7, 10.0);
  CHECK(m.points.shape() == Shape{1000, 8});
  CHECK(m.labels.shape() == Shape{1000});
  CHECK(m.centres.shape() == Shape{4, 8});
  std::vector<int64_t> labels = m.labels.to_vector<int64_t>();
  std::vector<int64_t> counts(4, 0);
  for (int64_t y : labels) counts.at(y)++;
  CHECK(counts == std::vector<int64_t>(4, 250));
  // Each point is its centre plus unit Gaussian noise: the mean squared offset per coordinate is ~1.
  Tensor offset = m.points - index_select(m.centres, 0, m.labels);
  CHECK(offset.square().mean().item() == doctest::Approx(1.0).epsilon(0.05));
  // Same seed, same data; another seed, other data.
  Mixture same = mixture_of_gaussians(1000, 4, 8, 7, 10.0);
  CHECK(allclose(same.points, m.points, 0, 0));
  CHECK(same.labels.to_vector<int64_t>() == labels);
  CHECK(!allclose(mixture_of_gaussians(1000, 4, 8, 8, 10.0).points, m.points));
  CHECK_THROWS_WITH_AS(mixture_of_gaussians(3, 4, 2), doctest::Contains("need 1 <= k <= n"), Error);
  CHECK_THROWS_WITH_AS(mixture_of_gaussians(10, 2, 2, 0, -1.0), doctest::Contains("spread must be"), Error);
}

TEST_CASE("data: session_sequences follow their latent-factor model") {
  const int64_t U = 400, I = 30, T = 12, F = 4;
  Sessions s = session_sequences(U, I, T, F, 11);
  CHECK(s.sequences.shape() == Shape{U, T});
  CHECK(s.user_factors.shape() == Shape{U, F});
  CHECK(s.item_factors.shape() == Shape{I, F});
  std::vector<int64_t> seq = s.sequences.to_vector<int64_t>();
  for (int64_t u = 0; u < U; ++u)
    for (int64_t t = 0; t < T; ++t) {
      int64_t item = seq[u * T + t];
      REQUIRE(item >= 0);
      REQUIRE(item < I);
      if (t > 0) REQUIRE(item != seq[u * T + t - 1]);  // no immediate repeats
    }
  CHECK(session_sequences(U, I, T, F, 11).sequences.to_vector<int64_t>() == seq);

  // A sampler test that needs no binning: if item x is drawn from p, then E[p(x)] = sum_j p_j^2. Averaged
  // over all U*T draws, the two sides agree within a few standard errors.
  std::vector<int64_t> users, prevs;
  for (int64_t u = 0; u < U; ++u)
    for (int64_t t = 0; t < T; ++t) users.push_back(u), prevs.push_back(t ? seq[u * T + t - 1] : -1);
  Tensor logits = next_item_logits(s, from_vector(users, Shape{U * T}), from_vector(prevs, Shape{U * T}));
  CHECK(logits.shape() == Shape{U * T, I});
  std::vector<double> p = softmax(logits, 1).to_vector<double>();
  double picked = 0, expected = 0, var = 0;
  for (int64_t r = 0; r < U * T; ++r) {
    double sq = 0, cube = 0;
    for (int64_t j = 0; j < I; ++j) sq += p[r * I + j] * p[r * I + j], cube += std::pow(p[r * I + j], 3);
    picked += p[r * I + seq[r]];
    expected += sq;
    var += cube - sq * sq;  // Var[p(x)] for one draw
  }
  double se = std::sqrt(var);
  CHECK(std::abs(picked - expected) < 4 * se);
  // The same draws scored under a wrong model (users' factors shifted by one) fit clearly worse.
  std::vector<int64_t> other_users = users;
  for (int64_t& u : other_users) u = (u + 1) % U;
  std::vector<double> q =
      softmax(next_item_logits(s, from_vector(other_users, Shape{U * T}), from_vector(prevs, Shape{U * T})), 1)
          .to_vector<double>();
  double ll_true = 0, ll_wrong = 0;
  for (int64_t r = 0; r < U * T; ++r) ll_true += std::log(p[r * I + seq[r]]), ll_wrong += std::log(q[r * I + seq[r]]);
  CHECK(ll_true > ll_wrong);

  CHECK_THROWS_WITH_AS(session_sequences(10, 1, 5, 2), doctest::Contains("n_items >= 2"), Error);
  CHECK_THROWS_WITH_AS(next_item_logits(s, from_vector<int64_t>({0}, Shape{1}), from_vector<int64_t>({I}, Shape{1})),
                       doctest::Contains("prev item 30"), Error);
}

// ---- DataLoader --------------------------------------------------------------------------------------

TEST_CASE("data: DataLoader batches a TensorDataset in order") {
  Tensor x = arange(0, 30, 1, float32).reshape({10, 3});
  Tensor y = arange(10);
  DataLoader loader(TensorDataset{{x, y}}, {.batch_size = 3});
  CHECK(loader.size() == 4);
  std::vector<int64_t> sizes, seen;
  for (auto& batch : loader) {
    REQUIRE(batch.size() == 2);
    sizes.push_back(batch[1].size(0));
    CHECK(batch[0].shape() == Shape{batch[1].size(0), 3});
    for (int64_t i : batch[1].to_vector<int64_t>()) seen.push_back(i);
    // Rows stay together: row i of x is 3i, 3i+1, 3i+2.
    CHECK(allclose(batch[0].select(1, 0), batch[1].to(float32) * 3.0));
  }
  CHECK(sizes == std::vector<int64_t>{3, 3, 3, 1});
  CHECK(seen == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});

  DataLoader dropping(TensorDataset{{x, y}}, {.batch_size = 3, .drop_last = true});
  CHECK(dropping.size() == 3);
  int64_t batches = 0;
  for (auto& batch : dropping) {
    CHECK(batch[0].size(0) == 3);
    ++batches;
  }
  CHECK(batches == 3);
  CHECK(DataLoader(TensorDataset{{x}}, {.batch_size = 20}).size() == 1);
  CHECK(DataLoader(TensorDataset{{x}}, {.batch_size = 20, .drop_last = true}).size() == 0);
}

TEST_CASE("data: DataLoader shuffles deterministically with each index once per epoch") {
  const int64_t n = 103;
  Tensor ids = arange(n);
  auto epoch_batches = [&](DataLoader<TensorDataset>& loader) {
    std::vector<std::vector<int64_t>> out;
    for (auto& batch : loader) out.push_back(batch[0].to_vector<int64_t>());
    return out;
  };
  DataLoader a(TensorDataset{{ids}}, {.batch_size = 10, .shuffle = true, .seed = 42});
  DataLoader b(TensorDataset{{ids}}, {.batch_size = 10, .shuffle = true, .seed = 42});
  DataLoader other(TensorDataset{{ids}}, {.batch_size = 10, .shuffle = true, .seed = 43});
  auto a0 = epoch_batches(a), a1 = epoch_batches(a);
  CHECK(a.epoch() == 2);
  auto b0 = epoch_batches(b), b1 = epoch_batches(b);
  CHECK(a0 == b0);  // same seed: same batches on every run
  CHECK(a1 == b1);
  CHECK(a0 != a1);  // a new order each epoch
  CHECK(epoch_batches(other) != a0);
  for (const auto& epoch : {a0, a1}) {
    CHECK(epoch.size() == 11);
    std::vector<int64_t> all;
    for (const auto& batch : epoch) all.insert(all.end(), batch.begin(), batch.end());
    std::sort(all.begin(), all.end());
    std::vector<int64_t> expect(n);
    for (int64_t i = 0; i < n; ++i) expect[i] = i;
    CHECK(all == expect);  // every index exactly once
  }
  // set_epoch replays an epoch.
  a.set_epoch(1);
  CHECK(epoch_batches(a) == a1);
  // drop_last with shuffle: 10 full batches of distinct indices.
  DataLoader d(TensorDataset{{ids}}, {.batch_size = 10, .shuffle = true, .seed = 42, .drop_last = true});
  auto d0 = epoch_batches(d);
  CHECK(d0.size() == 10);
  std::set<int64_t> distinct;
  for (const auto& batch : d0) {
    CHECK(batch.size() == 10);
    distinct.insert(batch.begin(), batch.end());
  }
  CHECK(distinct.size() == 100);
  CHECK(d0[0] == a0[0]);  // the order depends on (seed, epoch), not on drop_last
}

namespace {
// A dataset that makes each sample on demand: sample i is the vector (i, i^2).
struct Squares {
  int64_t n;
  int64_t size() const { return n; }
  Tensor get(int64_t i) const { return tensor({(double)i, (double)(i * i)}); }
};
// A dataset with its own collate: samples are plain ints, batches the sum of them.
struct Summing {
  int64_t size() const { return 6; }
  int64_t get(int64_t i) const { return i; }
  int64_t collate(const std::vector<int64_t>& samples) const {
    int64_t s = 0;
    for (int64_t v : samples) s += v;
    return s;
  }
};
}  // namespace

TEST_CASE("data: DataLoader batches sample by sample with collate") {
  DataLoader squares(Squares{5}, {.batch_size = 2});
  std::vector<Shape> shapes;
  for (auto& batch : squares) shapes.push_back(batch.shape());
  CHECK(shapes == std::vector<Shape>{{2, 2}, {2, 2}, {1, 2}});
  auto order = squares.order(0);
  CHECK(allclose(squares.batch(order, 1), tensor({{2, 4}, {3, 9}})));

  DataLoader summing(Summing{}, {.batch_size = 4});
  std::vector<int64_t> sums;
  for (auto& s : summing) sums.push_back(s);
  CHECK(sums == std::vector<int64_t>{0 + 1 + 2 + 3, 4 + 5});

  // collate of vectors of tensors, component by component.
  std::vector<Tensor> c = collate(std::vector<std::vector<Tensor>>{{ones({2}), zeros({1})}, {ones({2}), ones({1})}});
  CHECK(c[0].shape() == Shape{2, 2});
  CHECK(c[1].to_vector<float>() == std::vector<float>{0, 1});
}

TEST_CASE("data: DataLoader and TensorDataset reject bad input") {
  Tensor x = zeros({10, 2});
  CHECK_THROWS_WITH_AS(DataLoader(TensorDataset{{x}}, {.batch_size = 0}),
                       doctest::Contains("DataLoader: batch_size must be at least 1, got 0"), Error);
  CHECK_THROWS_WITH_AS(TensorDataset({x, zeros({9})}).size(), doctest::Contains("tensor 1 has 9 rows"), Error);
  CHECK_THROWS_WITH_AS(TensorDataset({}).size(), doctest::Contains("holds no tensors"), Error);
  CHECK_THROWS_WITH_AS(TensorDataset({scalar_tensor(1)}).size(), doctest::Contains("0-d"), Error);
  CHECK_THROWS_WITH_AS(TensorDataset({x}).get(10), doctest::Contains("index 10 out of range for 10 rows"), Error);
  DataLoader loader(TensorDataset{{x}}, {.batch_size = 4});
  CHECK_THROWS_WITH_AS(loader.batch(loader.order(0), 3), doctest::Contains("batch 3 out of range"), Error);
  CHECK_THROWS_WITH_AS(loader.set_epoch(-1), doctest::Contains("epoch must be >= 0"), Error);
  CHECK_THROWS_WITH_AS(collate(std::vector<Tensor>{}), doctest::Contains("collate: no samples"), Error);
  CHECK_THROWS_WITH_AS(collate(std::vector<std::vector<Tensor>>{{ones({1})}, {ones({1}), ones({1})}}),
                       doctest::Contains("sample 1 has 2 tensors"), Error);
}

// ---- issue 15 ------------------------------------------------------------------------------------------------

TEST_CASE("data: a gzipped IDX file followed by garbage is refused; a second gzip member is fine") {
  TempDir dir("gz_tail");
  const Bytes file = cat_bytes(idx_header(0x08, {2, 3}), Bytes{1, 2, 3, 4, 5, 6});
  write_gz(dir.file("ok.gz"), file);
  const Bytes gz = read_raw(dir.file("ok.gz"));
  CHECK(read_idx(dir.file("ok.gz")).shape() == Shape{2, 3});
  write_raw(dir.file("garbage.gz"), cat_bytes(gz, Bytes{'g', 'a', 'r', 'b', 'a', 'g', 'e'}));
  CHECK_THROWS_WITH_AS(read_idx(dir.file("garbage.gz")),
                       doctest::Contains("7 bytes of trailing data follow the gzip stream"), Error);
  write_raw(dir.file("zeros.gz"), cat_bytes(gz, Bytes(100, 0)));
  CHECK_THROWS_AS(read_idx(dir.file("zeros.gz")), Error);
  // Two members (what `cat a.gz b.gz` makes) are one valid gzip file: the second one's bytes count too.
  write_gz(dir.file("half1.gz"), Bytes(file.begin(), file.begin() + 10));
  write_gz(dir.file("half2.gz"), Bytes(file.begin() + 10, file.end()));
  write_raw(dir.file("two.gz"), cat_bytes(read_raw(dir.file("half1.gz")), read_raw(dir.file("half2.gz"))));
  CHECK(read_idx(dir.file("two.gz")).to_vector<int64_t>() == std::vector<int64_t>{1, 2, 3, 4, 5, 6});
}

TEST_CASE("data: an IDX header whose dims overflow is refused naming the file, even with no payload") {
  TempDir dir("idx_dims");
  write_raw(dir.file("empty_huge.idx"), idx_header(0x08, {0, 0xffffffff, 0xffffffff, 0xffffffff}));
  CHECK_THROWS_WITH_AS(read_idx(dir.file("empty_huge.idx")),
                       doctest::Contains("empty_huge.idx': the header's dims 0 x"), Error);
  write_raw(dir.file("empty_ok.idx"), idx_header(0x08, {0, 28, 28}));
  CHECK(read_idx(dir.file("empty_ok.idx")).shape() == Shape{0, 28, 28});
}

TEST_CASE("data: DataLoader with batch_size INT64_MAX gives one batch, not zero") {
  Tensor x = arange(10).to(float32);
  DataLoader loader(TensorDataset{{x}}, {.batch_size = INT64_MAX});
  CHECK(loader.size() == 1);
  std::vector<int64_t> order = loader.order(0);
  CHECK(loader.batch(order, 0)[0].size(0) == 10);
  CHECK_THROWS_AS(loader.batch(order, 1), Error);
  DataLoader dropping(TensorDataset{{x}}, {.batch_size = INT64_MAX, .drop_last = true});
  CHECK(dropping.size() == 0);
  DataLoader empty_set(TensorDataset{{zeros({0})}}, {.batch_size = 4});
  CHECK(empty_set.size() == 0);
}

TEST_CASE("data: an IDX payload read in growing chunks arrives whole, raw and gzipped; a short one is truncated") {
  // The reader asks for 64 KB first and then as much as has arrived: 300007 bytes take four reads.
  TempDir dir("idx_chunks");
  Bytes payload(300007);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = (uint8_t)(i * 31 + i / 977);
  const Bytes file = cat_bytes(idx_header(0x08, {300007}), payload);
  write_raw(dir.file("big.idx"), file);
  write_gz(dir.file("big.idx.gz"), file);
  for (const char* name : {"big.idx", "big.idx.gz"}) {
    INFO(name);
    data::IdxFile idx = data::read_idx_file(dir.file(name));
    REQUIRE(idx.bytes.size() == file.size());
    CHECK(std::equal(payload.begin(), payload.end(), idx.data()));
  }
  // A header that promises 1 GB in front of 10 bytes: truncated, after reading the 10.
  write_raw(dir.file("promise.idx"), cat_bytes(idx_header(0x08, {1u << 30}), Bytes(10, 7)));
  CHECK_THROWS_WITH_AS(read_idx(dir.file("promise.idx")), doctest::Contains("but the file holds only 10"), Error);
}

// ---- MovieLens -----------------------------------------------------------------------------------------

TEST_CASE("data: load_movielens reads u.data (ML-100K) into time-ordered sequences") {
  const std::string dir = std::string(HEED_SOURCE_DIR) + "/tests/fixtures/movielens/";
  UserSequences s = load_movielens(dir + "u.data");
  // Users 22, 186, 196 and items 51, 242, 302, 346, 377, 474 renumbered 0.. in id order. User 196 rated
  // 242 and 377 at the same second: the file's order (242 first) stays.
  CHECK(s.user_ids == std::vector<int64_t>{22, 186, 196});
  CHECK(s.item_ids == std::vector<int64_t>{51, 242, 302, 346, 377, 474});
  CHECK(s.n_items == 6);
  REQUIRE(s.items.size() == 3);
  CHECK(s.items[0] == std::vector<int64_t>{0, 4});     // 51, then 377
  CHECK(s.items[1] == std::vector<int64_t>{5, 3, 2});  // 474, 346, 302 by time, not by line
  CHECK(s.items[2] == std::vector<int64_t>{0, 1, 4});  // 51, 242, 377
  UserSequences long_only = load_movielens(dir + "u.data", 3);
  CHECK(long_only.user_ids == std::vector<int64_t>{186, 196});
  CHECK(long_only.items[0] == std::vector<int64_t>{5, 3, 2});
}

TEST_CASE("data: load_movielens reads ratings.dat (ML-1M) and drops short users and their items") {
  const std::string dir = std::string(HEED_SOURCE_DIR) + "/tests/fixtures/movielens/";
  UserSequences s = load_movielens(dir + "ratings.dat");
  CHECK(s.user_ids == std::vector<int64_t>{1, 2, 3});
  CHECK(s.item_ids == std::vector<int64_t>{661, 914, 1193, 1357, 3068});
  CHECK(s.items[0] == std::vector<int64_t>{2, 1, 0});  // 1193, 914, 661
  CHECK(s.items[1] == std::vector<int64_t>{3, 2, 4});  // 1357 and 1193 tie: file order; then 3068
  CHECK(s.items[2] == std::vector<int64_t>{0});
  // min_length 3 keeps users 1 and 2; user 2's 1357 and 3068 stay, and no item is left unrated.
  UserSequences two = load_movielens(dir + "ratings.dat", 3);
  CHECK(two.user_ids == std::vector<int64_t>{1, 2});
  CHECK(two.n_items == 5);
  TempDir tmp("movielens");
  std::ofstream(tmp.file("only_short.dat")) << "5::10::3::100\n6::11::3::100\n";
  std::ofstream(tmp.file("no_item_twice.dat")) << "5::10::3::100\n5::11::3::200\n6::12::3::100\n";
  UserSequences fewer = load_movielens(tmp.file("no_item_twice.dat"), 2);
  CHECK(fewer.item_ids == std::vector<int64_t>{10, 11});  // item 12 belonged to the dropped user 6 only
  CHECK_THROWS_WITH_AS(load_movielens(tmp.file("only_short.dat"), 2), doctest::Contains("no user of"), Error);
}

TEST_CASE("data: load_movielens rejects malformed lines, naming the file and the line") {
  TempDir tmp("movielens_bad");
  std::ofstream(tmp.file("u.data")) << "1\t2\t3\t4\n1\t2\tthree\t4\n";
  std::ofstream(tmp.file("short.dat")) << "1::2::3::4\n1::2::3\n";
  std::ofstream(tmp.file("empty.data")) << "\n";
  CHECK_THROWS_WITH_AS(load_movielens(tmp.file("u.data")), doctest::Contains("line 2: expected user<TAB>item"),
                       Error);
  CHECK_THROWS_WITH_AS(load_movielens(tmp.file("short.dat")), doctest::Contains("line 2: expected user::item"),
                       Error);
  CHECK_THROWS_WITH_AS(load_movielens(tmp.file("empty.data")), doctest::Contains("holds no ratings"), Error);
  CHECK_THROWS_WITH_AS(load_movielens(tmp.file("missing")), doctest::Contains("cannot open"), Error);
  CHECK_THROWS_WITH_AS(load_movielens(tmp.file("u.data"), 0), doctest::Contains("min_length must be >= 1"), Error);
}
