// targets.h: what each fuzz harness does with one input, shared by the libFuzzer programs (fuzz/fuzz_*.cpp,
// built with -DHEED_FUZZ=ON) and by the doctest suite, which replays every file of the corpora in
// tests/fuzz/corpus/<target>/ (tests/fuzz/test_corpus.cpp): a crash the fuzzer finds becomes a file there,
// and so a regression test.
//
// A target may throw only what heed promises for bad input: heed::Error (and its loaders' subtypes),
// nn::StateDictError and zoo::UsageError (std::invalid_argument), OutOfMemory, io::IoError. Anything
// else escapes, and the fuzzer reports it as a crash, like a segfault or a sanitizer report.
#pragma once
#include <unistd.h>
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/data.h"
#include "heed.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "models/zoo/zoo.h"
#include "nn/layers.h"
#include "nn/optim/training_state.h"

namespace heed::fuzz {

/// A file for this process's inputs (the loaders read paths): under /dev/shm when it exists, else /tmp.
inline std::string scratch_path(const std::string& name) {
  static const std::string dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  return dir + "/heed_fuzz_" + std::to_string(::getpid()) + "_" + name;
}

inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch_path(name);
  if (std::FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
  return path;
}

// Runs f, letting through only the exceptions heed documents for bad input.
template <class F>
void expect_only_documented_errors(F f) {
  try {
    f();
  } catch (const std::invalid_argument&) {  // heed::Error, SafetensorsError, StateDictError, UsageError
  } catch (const OutOfMemory&) {
  } catch (const io::IoError&) {
  }
}

/// The safetensors reader: any bytes as a file.
inline int safetensors(const uint8_t* data, size_t size) {
  const std::string path = write_input("st.safetensors", data, size);
  expect_only_documented_errors([&] {
    Metadata meta;
    TensorMap m = load(path, &meta);
    for (auto& [name, t] : m) (void)t.to(float64).sum().item();  // touch every byte that was read
  });
  return 0;
}

// A small module, as a checkpoint's model: Linear(3,4), LayerNorm(4), Linear(4,2).
struct Small : nn::Module {
  nn::Linear fc1{3, 4}, fc2{4, 2};
  nn::LayerNorm norm{4};
  Small() {
    register_module("fc1", fc1);
    register_module("norm", norm);
    register_module("fc2", fc2);
  }
};

/// load_state_dict into a small module, strict and not, and the whole training state (model, Adam, the
/// generator, the step), then one forward and one optimizer step on what was loaded.
inline int state_dict(const uint8_t* data, size_t size) {
  // One module for the whole run, put back to the same weights and no gradients before each use: building
  // it per input (two kaiming inits) cost more than loading the file, and made each input's starting
  // weights depend on the generator state the previous input had loaded.
  static Small model;
  static const nn::StateDict initial = [] {
    nn::StateDict d;
    for (auto& [name, t] : model.state_dict()) d[name] = t.detach().clone();
    return d;
  }();
  auto fresh = [] {
    model.load_state_dict(initial);
    model.zero_grad();
  };
  const std::string path = write_input("sd.safetensors", data, size);
  expect_only_documented_errors([&] {
    fresh();
    model.load_state_dict(load(path), /*strict=*/false);
  });
  expect_only_documented_errors([&] {
    fresh();
    optim::Adam opt(model.parameters(), {.lr = 1e-3});
    optim::load_training_state(path, model, opt);
    Tensor y = model.fc2(model.norm(model.fc1(ones({2, 3}))));
    y.sum().backward();
    opt.step();
  });
  return 0;
}

/// The IDX reader on the bytes as they are (raw; gzip when they start like gzip).
inline int idx(const uint8_t* data, size_t size) {
  const std::string path = write_input("raw.idx", data, size);
  expect_only_documented_errors([&] { (void)data::read_idx_file(path, 1 << 20); });
  expect_only_documented_errors([&] { (void)data::read_idx(path); });
  return 0;
}

/// `data` as one gzip member, made in memory by one deflate stream kept for the whole run: gzopen("wb")
/// per input allocated and cleared zlib's ~270 KB of compressor state each time, most of idx_gzip's
/// cost. A 512-byte window and the smallest hash (memLevel 1) still make a valid gzip stream, and the
/// reader never sees how the compressor was tuned.
inline std::string gzip_member(const uint8_t* data, size_t size) {
  static z_stream z = [] {
    z_stream s{};
    deflateInit2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + 9, 1, Z_DEFAULT_STRATEGY);  // 16 +: gzip
    return s;
  }();
  deflateReset(&z);
  std::string out(deflateBound(&z, (uLong)size), '\0');
  z.next_in = const_cast<Bytef*>(data), z.avail_in = (uInt)size;
  z.next_out = reinterpret_cast<Bytef*>(out.data()), z.avail_out = (uInt)out.size();
  deflate(&z, Z_FINISH);  // Z_STREAM_END: deflateBound leaves room for the whole member
  out.resize(out.size() - z.avail_out);
  return out;
}

/// The IDX reader on the bytes gzipped (so that mutations explore the IDX structure beneath the
/// compression), with the input's last byte deciding what follows the stream: nothing, a second member,
/// or garbage.
inline int idx_gzip(const uint8_t* data, size_t size) {
  std::string file = gzip_member(data, size > 1 ? size - 1 : 0);
  if (size > 0 && data[size - 1] % 4 == 1) {  // trailing garbage
    file += "garbage";
  } else if (size > 0 && data[size - 1] % 4 == 2) {  // a second, empty gzip member
    file += gzip_member(nullptr, 0);
  }
  const std::string path = write_input("gz.idx.gz", reinterpret_cast<const uint8_t*>(file.data()), file.size());
  expect_only_documented_errors([&] { (void)data::read_idx_file(path, 1 << 20); });
  return 0;
}

/// The zoo's command line: the input, split at NUL bytes, is argv after the program's name.
inline int cli(const uint8_t* data, size_t size) {
  std::vector<std::string> words{"vae"};
  std::string word;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      words.push_back(word);
      word.clear();
    } else {
      word += (char)data[i];
    }
  }
  if (!word.empty()) words.push_back(word);
  if (words.size() > 64) words.resize(64);
  std::vector<const char*> argv;
  for (const auto& w : words) argv.push_back(w.c_str());
  argv.push_back(nullptr);
  // One Cli for the whole run (parse_args starts each parse afresh): its options and its help text are the
  // same for every input, so they are built once.
  static zoo::Cli c = [] {
    zoo::Cli c("vae", "fuzzed", {.epochs = 10, .batch_size = 128, .lr = 1e-3});
    c.option("arch", "architecture", std::string("mlp"));
    c.option("latent", "latent size", 20, 1);
    c.option("beta", "KL weight", 1.0, 0, 10);
    c.option("steps", "steps", int64_t(0), 0);
    c.option("eval", "evaluate", true);
    c.option("resume", "checkpoint", std::string());
    (void)c.help();
    return c;
  }();
  expect_only_documented_errors([&] {
    std::optional<zoo::RunConfig> cfg = c.parse_args((int)words.size(), argv.data());
    if (!cfg) return;
    (void)c.get<int64_t>("latent"), (void)c.get<double>("beta"), (void)c.get<std::string>("arch");
    (void)c.values(), (void)c.command();
  });
  return 0;
}

}  // namespace heed::fuzz
