// failure.cpp: a two-rank job in which rank 1 fails while rank 0 waits for it in an all-reduce.
//
//   heed_dist_failure throws   rank 1 throws a heed::Error inside zoo::main_guard, as a zoo model would
//   heed_dist_failure killed   rank 1 is killed by SIGKILL (out of memory, a node lost, a user's kill -9)
//
// Either way the job must end on every rank with an error, promptly, instead of leaving rank 0 waiting for
// ever. cmake/HeedExpectJobFailure.cmake runs it under mpirun with a time limit (ctest entries
// dist_rank_throws and dist_rank_killed).
#include <csignal>
#include <cstdio>
#include <string>

#include "dist/dist.h"
#include "models/zoo/zoo.h"
#include "tensor/error.h"

using namespace heed;

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  return zoo::main_guard("heed_dist_failure", [&] {
    if (mode != "throws" && mode != "killed") throw Error("usage: heed_dist_failure throws|killed");
    if (dist::world_size() < 2) throw Error("run me under mpirun -np 2 (or more)");
    dist::barrier();  // everyone is up
    if (dist::rank() == 1) {
      if (mode == "killed") std::raise(SIGKILL);
      throw Error("rank 1 fails on purpose");
    }
    Tensor t = ones({1000});
    for (;;) dist::all_reduce(t);  // rank 1 never joins: only the job's end gets rank 0 out of here
    return 0;
  });
}
