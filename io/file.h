// file.h: writing files so that no reader ever sees half of one, and checking files by their SHA-256.
//
// Every file heed writes (checkpoints, metrics.json, PNGs, plot scripts) goes through AtomicFile: the bytes
// go to a temporary file beside the target, which is flushed to disk (fsync) and then renamed over the
// target. rename() within one file system is atomic, so after a crash at any instant the target holds the
// old bytes or the new ones, never a mixture, and the old file is lost only once the new one is durable.
//
//   io::AtomicFile f(path, "save");            // "save" names the caller in error messages
//   f.write(header.data(), header.size());
//   f.write(data, n);
//   f.commit();                                // fsync, rename; without commit() the temporary is removed
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace heed::io {

// ---- atomic writes -------------------------------------------------------------------------------------
/// A file that could not be written: no such folder, no permission, a full disk. A failure of the run, not a
/// caller's mistake, so a std::runtime_error (the zoo exits 1 for it, zoo.h). The message names the op, the
/// path and the system's reason.
struct IoError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A file being written to `path` through a temporary beside it, named `path`.tmp.<pid>.<counter>. Errors
/// throw IoError. Not copyable; the destructor removes an uncommitted temporary. Opening one first removes
/// the stale temporaries of `path` (remove_stale_temporaries), so kills mid-save do not pile up full-size
/// files.
class AtomicFile {
 public:
  AtomicFile(std::string path, std::string op);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, size_t n);
  /// fsync the temporary, rename it over the target, fsync the folder so the rename itself is durable.
  void commit();
  const std::string& temp_path() const { return tmp_; }

 private:
  std::string path_, op_, tmp_;
  int fd_ = -1;
};

/// Removes `path`.tmp.<pid>[.<n>] files whose process no longer exists (kill(pid, 0) fails with ESRCH): what
/// a process killed mid-save leaves. A live process's temporaries, this one's included, are kept. Returns
/// how many it removed.
int remove_stale_temporaries(const std::string& path);

/// The whole of `bytes` to `path`, atomically (AtomicFile); `op` names the caller in errors.
void write_file_atomic(const std::string& path, std::string_view bytes, const std::string& op = "write_file_atomic");

// ---- checksums -----------------------------------------------------------------------------------------
/// SHA-256 (FIPS 180-4), fed in pieces of any size: update(...) as often as needed, then hex_digest().
class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  /// The 64 lowercase hex digits of the digest of everything so far (more updates may follow).
  std::string hex_digest() const;

 private:
  void compress(const uint8_t* block);  // one 64-byte block into state_
  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};    // a partial block waiting for more bytes
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};
/// The SHA-256 of n bytes, as 64 lowercase hex digits.
std::string sha256_hex(const void* data, size_t n);

}  // namespace heed::io
