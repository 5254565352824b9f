// zoo_program.h: what the zoo tests share to run a zoo program as a user would, from the shell.
//
// The zoo programs are built next to heed_tests, so zoo_program("vae") is <folder of this executable>/vae.
// Without them (a build with HEED_BUILD_MODELS=OFF) the tests say so and pass.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace heed::test {

namespace fs = std::filesystem;

inline fs::path zoo_program(const std::string& name) {
  return fs::read_symlink("/proc/self/exe").parent_path() / name;
}

// A fresh, empty folder for one test's runs, unique to this process.
inline fs::path scratch(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("heed_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

struct Result {
  int exit_code;       // -1 when the program did not exit normally (a signal)
  std::string output;  // stdout and stderr together
};

inline std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

inline nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// Runs `program args` through the shell, its output captured in dir/output.txt.
inline Result run(const fs::path& program, const std::string& args, const fs::path& dir) {
  const fs::path log = dir / "output.txt";
  const std::string cmd = program.string() + " " + args + " > " + log.string() + " 2>&1";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text(log)};
}

}  // namespace heed::test
