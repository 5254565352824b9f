// seeds.h: the seed corpora of the fuzz harnesses (tests/fuzz/corpus/<target>/<name>), as heed writes them:
// valid and near-valid files for each target of fuzz/targets.h. fuzz/make_seeds.cpp writes them to disk
// (`build/fuzz_make_seeds tests/fuzz/corpus`), and the suite checks that the committed files are exactly
// these bytes (tests/fuzz/test_corpus.cpp), so a change to a writer that changes the seeds is seen.
//
// Files the fuzzer found (a crash, kept as a regression test) sit beside the seeds under other names.
#pragma once
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "fuzz/targets.h"

namespace heed::fuzz {

/// Every seed: "<target>/<name>" -> its bytes. Deterministic: the model of the state_dict seeds is
/// initialised from seed 0, and the default generator is left as it was found.
inline std::map<std::string, std::string> seeds() {
  std::map<std::string, std::string> out;
  const std::string tmp = scratch_path("seed");
  auto read_tmp = [&] {
    std::string s;
    if (std::FILE* f = std::fopen(tmp.c_str(), "rb")) {
      char buf[4096];
      for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) s.append(buf, n);
      std::fclose(f);
    }
    return s;
  };
  auto saved = [&](const TensorMap& tensors, const Metadata& meta = {}) {
    save(tmp, tensors, meta);
    return read_tmp();
  };

  // ---- safetensors: valid files of every dtype, and near-valid ones ----
  const std::string valid = saved(
      {{"w", ones({2, 3})}, {"b", zeros({3}, float64)}, {"i", arange(4)}, {"m", ones({2}) > 0.5}}, {{"format", "pt"}});
  out["safetensors/valid"] = valid;
  out["safetensors/scalar_and_empty"] = saved({{"s", scalar_tensor(1.5)}, {"e", zeros({0, 4})}});
  out["safetensors/truncated"] = valid.substr(0, valid.size() - 3);
  std::string bad_len = valid;
  bad_len[0] = (char)0xff;
  out["safetensors/header_length_past_end"] = bad_len;
  // An 8-byte little-endian header length, the header, then `data` zero bytes.
  auto raw = [](const std::string& header, size_t data) {
    uint64_t n = header.size();
    return std::string(reinterpret_cast<const char*>(&n), 8) + header + std::string(data, '\0');
  };
  const std::string f32 = R"("dtype":"F32","shape":)";
  out["safetensors/duplicate_key"] =
      raw("{\"a\":{" + f32 + "[1],\"data_offsets\":[0,4]},\"a\":{" + f32 + "[1],\"data_offsets\":[4,8]}}", 8);
  out["safetensors/deep"] = raw("{\"x\":{\"dtype\":" + std::string(300, '[') + std::string(300, ']') + "}}", 0);
  out["safetensors/nul"] = raw(std::string("{}") + '\0' + "x", 0);
  out["safetensors/huge_shape"] =
      raw("{\"h\":{" + f32 + "[0,1099511627776,1099511627776],\"data_offsets\":[0,0]}}", 0);
  out["safetensors/overlap"] =
      raw("{\"a\":{" + f32 + "[2],\"data_offsets\":[0,8]},\"b\":{" + f32 + "[1],\"data_offsets\":[4,8]}}", 8);

  // ---- state_dict: a training state of fuzz::Small, the model alone, and two crafted states ----
  {
    Generator& gen = default_generator();
    const Generator before = gen;
    gen.manual_seed(0);
    Small model;
    optim::Adam opt(model.parameters(), {.lr = 1e-3});
    Tensor y = model.fc2(model.norm(model.fc1(ones({2, 3}))));
    y.sum().backward();
    opt.step();
    optim::save_training_state(tmp, model, opt, optim::StateDict{}, 1, {{"seed", "0"}});
    out["state_dict/training_state"] = read_tmp();
    TensorMap all = load(tmp);
    out["state_dict/model_only"] = saved(model.state_dict());
    TensorMap crafted = all;
    crafted["optim.param_groups.0.beta1"] = scalar_tensor(5.0, float64);
    out["state_dict/beta1_5"] = saved(crafted);
    crafted = all;
    crafted["step"] = from_vector<int64_t>({int64_t(1) << 62});
    out["state_dict/step_2_62"] = saved(crafted);
    gen = before;
  }

  // ---- idx: raw files of each type and rank; idx_gzip gzips the same bytes itself ----
  auto idx_bytes = [](std::vector<uint8_t> header, size_t payload) {
    std::string s(header.begin(), header.end());
    for (size_t i = 0; i < payload; ++i) s += (char)(i * 7);
    return s;
  };
  const std::string ubyte3 = idx_bytes({0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3}, 18);
  const std::string labels = idx_bytes({0, 0, 8, 1, 0, 0, 0, 5}, 5);
  const std::vector<std::pair<std::string, std::string>> idx_files{
      {"ubyte3", ubyte3},
      {"labels", labels},
      {"floats", idx_bytes({0, 0, 0x0d, 2, 0, 0, 0, 2, 0, 0, 0, 2}, 16)},
      {"doubles", idx_bytes({0, 0, 0x0e, 1, 0, 0, 0, 2}, 16)},
      {"shorts", idx_bytes({0, 0, 0x0b, 1, 0, 0, 0, 3}, 6)},
      {"huge", idx_bytes({0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1}, 4)},
      {"trailing", labels + "xx"},
      {"short", ubyte3.substr(0, 20)}};
  for (const auto& [name, bytes] : idx_files) {
    out["idx/" + name] = bytes;
    out["idx_gzip/" + name] = bytes + '\0';  // the last byte says what follows the stream: 0, nothing
  }
  out["idx_gzip/garbage_after"] = labels + '\1';
  out["idx_gzip/second_member"] = labels + '\2';
  {
    gzFile f = gzopen(tmp.c_str(), "wb");
    gzwrite(f, ubyte3.data(), (unsigned)ubyte3.size());
    gzclose(f);
    out["idx/ubyte3.gz"] = read_tmp();
    out["idx/ubyte3.gz_garbage"] = read_tmp() + "garbage";
  }

  // ---- cli: argv after the program name, NUL-separated ----
  auto args = [](const std::vector<std::string>& words) {
    std::string s;
    for (size_t i = 0; i < words.size(); ++i) s += (i ? std::string(1, '\0') : "") + words[i];
    return s;
  };
  out["cli/defaults"] = "";
  out["cli/many"] = args({"--epochs", "3", "--batch-size=64", "--lr", "0.001", "--seed", "7", "--threads", "2", "--out",
                          "runs/x", "--quick", "--latent", "8", "--beta=0.5", "--arch", "conv", "--eval=false",
                          "--steps", "100"});
  out["cli/bad_values"] = args({"--epochs", "ten", "--lr", "-1", "--threads", "100000", "--seed", "-3"});
  out["cli/help"] = args({"--help"});
  out["cli/unknown"] = args({"--nope", "x", "stray", "--quick=maybe", "-e"});
  out["cli/ranges"] = args({"--latent", "99999999999999999999", "--beta", "1e309", "--steps", "-0"});
  std::remove(tmp.c_str());
  return out;
}

}  // namespace heed::fuzz
