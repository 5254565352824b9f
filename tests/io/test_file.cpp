// Tests for io/file.h: atomic writes (the old file survives a failed write, no temporary is left behind,
// concurrent writers to one path) and SHA-256 against the FIPS 180-2 vectors.
#include "io/file.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tensor/error.h"

using namespace heed;
using namespace heed::io;
namespace fs = std::filesystem;

namespace {

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// A fresh folder under the system's temp dir, removed with everything in it at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    path =
        fs::temp_directory_path() / ("heed_io_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  static int& counter() {
    static int n = 0;
    return n;
  }
  size_t entries() const { return (size_t)std::distance(fs::directory_iterator(path), fs::directory_iterator()); }
};

}  // namespace

// ---- atomic writes -----------------------------------------------------------------------------------

TEST_CASE("io: write_file_atomic replaces the file whole and leaves no temporary") {
  TempDir dir;
  const fs::path p = dir.path / "a.txt";
  write_file_atomic(p.string(), "first");
  CHECK(read_all(p) == "first");
  write_file_atomic(p.string(), "second, longer");
  CHECK(read_all(p) == "second, longer");
  CHECK(dir.entries() == 1);
}

TEST_CASE("io: an AtomicFile that is never committed leaves the old file and no temporary") {
  TempDir dir;
  const fs::path p = dir.path / "keep.bin";
  write_file_atomic(p.string(), "old");
  {
    AtomicFile f(p.string(), "test");
    f.write("new bytes", 9);
    CHECK(fs::exists(f.temp_path()));
  }  // e.g. an exception between write and commit
  CHECK(read_all(p) == "old");
  CHECK(dir.entries() == 1);
}

TEST_CASE("io: a write that cannot happen throws heed::Error naming the op and the path") {
  TempDir dir;
  const std::string p = (dir.path / "no_such_folder" / "x.txt").string();
  CHECK_THROWS_WITH_AS(write_file_atomic(p, "x", "save_png"),
                       doctest::Contains(("save_png: cannot write '" + p + "'").c_str()), IoError);
  CHECK_THROWS_WITH_AS(write_file_atomic(p, "x", "save_png"), doctest::Contains("no_such_folder"), IoError);
  // Renaming a file over a folder fails: the temporary is removed and the folder is untouched.
  fs::create_directories(dir.path / "taken");
  CHECK_THROWS_WITH_AS(write_file_atomic((dir.path / "taken").string(), "x"), doctest::Contains("renaming"), IoError);
  CHECK(fs::is_directory(dir.path / "taken"));
  CHECK(dir.entries() == 1);
}

TEST_CASE("io: threads writing one path concurrently all succeed, and the file is one writer's bytes") {
  TempDir dir;
  const std::string p = (dir.path / "shared.txt").string();
  std::vector<std::thread> threads;
  std::vector<std::string> errors(4);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      try {
        for (int i = 0; i < 20; ++i) write_file_atomic(p, std::string(1000, (char)('a' + t)));
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  for (auto& th : threads) th.join();
  for (const auto& e : errors) CHECK(e == "");
  const std::string s = read_all(p);
  REQUIRE(s.size() == 1000);
  CHECK(std::count(s.begin(), s.end(), s[0]) == 1000);
  CHECK(dir.entries() == 1);
}

// Issue 15: every kill -9 during a save left a full-size checkpoint.safetensors.tmp.<pid> behind.
TEST_CASE("io: saving removes the temporaries of dead processes, and keeps live ones and strangers") {
  TempDir dir;
  const std::string p = (dir.path / "checkpoint.safetensors").string();
  // A pid above the kernel's pid_max never names a live process.
  long pid_max = 4194304;
  std::ifstream("/proc/sys/kernel/pid_max") >> pid_max;
  const std::string dead = std::to_string(pid_max + 1);
  auto touch = [&](const std::string& name) { std::ofstream(dir.path / name) << std::string(100, 'x'); };
  touch("checkpoint.safetensors.tmp." + dead);                // the old naming
  touch("checkpoint.safetensors.tmp." + dead + ".7");         // the current one
  touch("checkpoint.safetensors.tmp.1");                      // pid 1 is alive: kept
  touch("checkpoint.safetensors.tmp." + dead + ".x");         // not a temporary of ours: kept
  touch("other.safetensors.tmp." + dead + ".0");              // another file's: kept
  write_file_atomic(p, "new");
  CHECK(read_all(p) == "new");
  CHECK_FALSE(fs::exists(dir.path / ("checkpoint.safetensors.tmp." + dead)));
  CHECK_FALSE(fs::exists(dir.path / ("checkpoint.safetensors.tmp." + dead + ".7")));
  CHECK(fs::exists(dir.path / "checkpoint.safetensors.tmp.1"));
  CHECK(fs::exists(dir.path / ("checkpoint.safetensors.tmp." + dead + ".x")));
  CHECK(fs::exists(dir.path / ("other.safetensors.tmp." + dead + ".0")));
  CHECK(remove_stale_temporaries(p) == 0);
}

// ---- SHA-256 -----------------------------------------------------------------------------------------

TEST_CASE("io: sha256 matches the FIPS 180-2 test vectors") {
  CHECK(sha256_hex("abc", 3) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("", 0) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const char* two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";  // 448 bits
  CHECK(sha256_hex(two_blocks, std::strlen(two_blocks)) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // One million 'a', fed in uneven pieces, which also exercises the partial-block buffer.
  std::string a(1000000, 'a');
  Sha256 h;
  size_t pos = 0;
  for (size_t piece = 1; pos < a.size(); piece = piece * 7 % 1009 + 1) {
    size_t n = std::min(piece, a.size() - pos);
    h.update(a.data() + pos, n);
    pos += n;
  }
  CHECK(h.hex_digest() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // hex_digest does not end the hash: asking twice, or asking midway and going on, is fine.
  CHECK(h.hex_digest() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  Sha256 abc;
  abc.update("ab", 2);
  CHECK(abc.hex_digest() == sha256_hex("ab", 2));
  abc.update("c", 1);
  CHECK(abc.hex_digest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("io: sha256 in pieces equals sha256 in one call at every split point") {
  std::string msg;
  for (int i = 0; i < 200; ++i) msg += (char)(i * 37 + 11);
  const std::string whole = sha256_hex(msg.data(), msg.size());
  for (size_t split = 0; split <= msg.size(); ++split) {
    Sha256 h;
    h.update(msg.data(), split);
    h.update(msg.data() + split, msg.size() - split);
    CHECK(h.hex_digest() == whole);
  }
}

