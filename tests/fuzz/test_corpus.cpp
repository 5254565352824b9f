// Replays the fuzz corpora in the suite: every file of tests/fuzz/corpus/<target>/ goes through the same
// function the libFuzzer harness fuzz/fuzz_<target>.cpp calls (fuzz/targets.h). The seeds are valid and
// near-valid inputs; a crash the fuzzer finds is added to its target's folder, so it stays fixed.
//
// The seeds were written by heed itself: `HEED_WRITE_FUZZ_SEEDS=1 build/heed_tests -tc="fuzz: seeds*"`
// rewrites them (the second test case below).
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>

#include "fuzz/targets.h"

using namespace heed;
namespace fs = std::filesystem;

namespace {

const fs::path kCorpus = fs::path(HEED_SOURCE_DIR) / "tests" / "fuzz" / "corpus";

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

const std::map<std::string, std::function<int(const uint8_t*, size_t)>>& targets() {
  static const std::map<std::string, std::function<int(const uint8_t*, size_t)>> t{
      {"safetensors", fuzz::safetensors}, {"state_dict", fuzz::state_dict}, {"idx", fuzz::idx},
      {"idx_gzip", fuzz::idx_gzip},       {"cli", fuzz::cli}};
  return t;
}

void write(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << bytes;
}

std::string read_text(const std::string& path) {
  std::vector<uint8_t> b = read_bytes(path);
  return std::string(b.begin(), b.end());
}

std::string idx_bytes(std::vector<uint8_t> header, size_t payload) {
  std::string s(header.begin(), header.end());
  for (size_t i = 0; i < payload; ++i) s += (char)(i * 7);
  return s;
}

}  // namespace

TEST_CASE("fuzz: every corpus file goes through its target without a crash or an undocumented exception") {
  int files = 0;
  for (const auto& [name, run] : targets()) {
    const fs::path dir = kCorpus / name;
    REQUIRE_MESSAGE(fs::is_directory(dir), dir);
    for (const auto& entry : fs::directory_iterator(dir)) {
      INFO(entry.path());
      std::vector<uint8_t> bytes = read_bytes(entry.path());
      CHECK(run(bytes.data(), bytes.size()) == 0);
      ++files;
    }
  }
  CHECK(files >= 20);
  for (const char* scratch : {"st.safetensors", "sd.safetensors", "raw.idx", "gz.idx.gz"})
    fs::remove(fuzz::scratch_path(scratch));  // the targets' input files
}

TEST_CASE("fuzz: seeds (rewritten with HEED_WRITE_FUZZ_SEEDS=1)") {
  if (!std::getenv("HEED_WRITE_FUZZ_SEEDS")) return;
  const std::string tmp = fuzz::scratch_path("seed");
  // safetensors: valid files of every dtype, and near-valid ones.
  save(tmp, {{"w", ones({2, 3})}, {"b", zeros({3}, float64)}, {"i", arange(4)}, {"m", ones({2}) > 0.5}},
       {{"format", "pt"}});
  const std::string valid = read_text(tmp);
  write(kCorpus / "safetensors" / "valid", valid);
  save(tmp, {{"s", scalar_tensor(1.5)}, {"e", zeros({0, 4})}});
  write(kCorpus / "safetensors" / "scalar_and_empty", read_text(tmp));
  write(kCorpus / "safetensors" / "truncated", valid.substr(0, valid.size() - 3));
  std::string bad_len = valid;
  bad_len[0] = (char)0xff;
  write(kCorpus / "safetensors" / "header_length_past_end", bad_len);
  auto raw = [](const std::string& header, size_t data) {
    uint64_t n = header.size();
    return std::string(reinterpret_cast<const char*>(&n), 8) + header + std::string(data, '\0');
  };
  write(kCorpus / "safetensors" / "duplicate_key",
        raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8));
  write(kCorpus / "safetensors" / "deep", raw("{\"x\":{\"dtype\":" + std::string(300, '[') + std::string(300, ']') + "}}", 0));
  write(kCorpus / "safetensors" / "nul", raw(std::string("{}") + '\0' + "x", 0));
  write(kCorpus / "safetensors" / "huge_shape",
        raw("{\"h\":{\"dtype\":\"F32\",\"shape\":[0,1099511627776,1099511627776],\"data_offsets\":[0,0]}}", 0));
  write(kCorpus / "safetensors" / "overlap",
        raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8));
  // state_dict: a training state of fuzz::Small, and the model alone.
  {
    fuzz::Small model;
    optim::Adam opt(model.parameters(), {.lr = 1e-3});
    Tensor y = model.fc2(model.norm(model.fc1(ones({2, 3}))));
    y.sum().backward();
    opt.step();
    optim::save_training_state(tmp, model, opt, optim::StateDict{}, 1, {{"seed", "0"}});
    write(kCorpus / "state_dict" / "training_state", read_text(tmp));
    save(tmp, model.state_dict());
    write(kCorpus / "state_dict" / "model_only", read_text(tmp));
    TensorMap all = load(kCorpus / "state_dict" / "training_state");
    all["optim.param_groups.0.beta1"] = scalar_tensor(5.0, float64);
    save(tmp, all);
    write(kCorpus / "state_dict" / "beta1_5", read_text(tmp));
    all = load(kCorpus / "state_dict" / "training_state");
    all["step"] = from_vector<int64_t>({int64_t(1) << 62});
    save(tmp, all);
    write(kCorpus / "state_dict" / "step_2_62", read_text(tmp));
  }
  // idx: raw files of each type and rank; idx_gzip takes the raw bytes and gzips them itself.
  const std::string ubyte3 = idx_bytes({0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3}, 18);
  const std::string labels = idx_bytes({0, 0, 8, 1, 0, 0, 0, 5}, 5);
  const std::string floats = idx_bytes({0, 0, 0x0d, 2, 0, 0, 0, 2, 0, 0, 0, 2}, 16);
  const std::string doubles = idx_bytes({0, 0, 0x0e, 1, 0, 0, 0, 2}, 16);
  const std::string shorts = idx_bytes({0, 0, 0x0b, 1, 0, 0, 0, 3}, 6);
  const std::string huge = idx_bytes({0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1}, 4);
  for (auto [name, bytes] : {std::pair{"ubyte3", ubyte3}, {"labels", labels}, {"floats", floats}, {"doubles", doubles},
                             {"shorts", shorts}, {"huge", huge}, {"trailing", labels + "xx"}, {"short", ubyte3.substr(0, 20)}}) {
    write(kCorpus / "idx" / name, bytes);
    write(kCorpus / "idx_gzip" / name, bytes + "\x00");  // last byte 0: no trailer
  }
  write(kCorpus / "idx_gzip" / "garbage_after", labels + "\x01");
  write(kCorpus / "idx_gzip" / "second_member", labels + "\x02");
  {
    gzFile f = gzopen(tmp.c_str(), "wb");
    gzwrite(f, ubyte3.data(), (unsigned)ubyte3.size());
    gzclose(f);
    write(kCorpus / "idx" / "ubyte3.gz", read_text(tmp));
    write(kCorpus / "idx" / "ubyte3.gz_garbage", read_text(tmp) + "garbage");
  }
  // cli: argv after the program name, NUL-separated.
  auto args = [](std::vector<std::string> words) {
    std::string s;
    for (size_t i = 0; i < words.size(); ++i) s += (i ? std::string(1, '\0') : "") + words[i];
    return s;
  };
  write(kCorpus / "cli" / "defaults", "");
  write(kCorpus / "cli" / "many", args({"--epochs", "3", "--batch-size=64", "--lr", "0.001", "--seed", "7", "--threads", "2",
                                        "--out", "runs/x", "--quick", "--latent", "8", "--beta=0.5", "--arch", "conv",
                                        "--eval=false", "--steps", "100"}));
  write(kCorpus / "cli" / "bad_values", args({"--epochs", "ten", "--lr", "-1", "--threads", "100000", "--seed", "-3"}));
  write(kCorpus / "cli" / "help", args({"--help"}));
  write(kCorpus / "cli" / "unknown", args({"--nope", "x", "stray", "--quick=maybe", "-e"}));
  write(kCorpus / "cli" / "ranges", args({"--latent", "99999999999999999999", "--beta", "1e309", "--steps", "-0"}));
  std::filesystem::remove(tmp);
}
