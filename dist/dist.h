// dist.h: heed::dist, collectives on tensors between the processes of one MPI job. Read after nn/module.h.
//
// heed scales out with the engine HPC clusters already run: MPI (Debian's OpenMPI), launched by mpirun,
// which also runs under Slurm and across hosts with a hostfile:
//
//   mpirun -np 2 ./build/vae                                  two processes on this machine
//   mpirun -np 16 --hostfile hosts ./build/vae                16 processes on the hosts listed in `hosts`
//   ./run vae --np 2                                          the same as the first, with the flags root needs
//
// Every process runs the whole program. Each one is a *rank* (0..world_size-1); rank 0 alone writes
// files. A collective is a call that every rank makes, in the same order, with tensors of the same shape
// and dtype: all_reduce sums (or averages ...) a tensor over the ranks, in place, on every rank.
//
// Not launched by mpirun, heed::dist is a world of one: rank 0 of 1, every collective returns at once
// with the tensor unchanged, and MPI is never initialised (a single-process run pays nothing). A build
// without MPI (cmake -DHEED_MPI=OFF, or libopenmpi-dev not installed) has the same world of one, and
// refuses with an Error when it finds itself started by mpirun with more than one process.
//
// The names and semantics are torch.distributed's. docs/distributed.md explains the design, what it
// costs, and how to plan a cluster run; dist/ddp.h trains one model on many ranks.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "tensor/tensor.h"

namespace heed::dist {

// ---- the world -------------------------------------------------------------------------------------------
/// Joins the MPI job when the environment says mpirun started this process (OMPI_COMM_WORLD_SIZE,
/// PMI_SIZE or PMIX_RANK set); otherwise a world of one. Idempotent; every function below calls it.
void init();
/// True when heed was built with MPI (HEED_MPI).
bool mpi_available();
/// This process's rank in [0, world_size), its rank among the processes on its own host, and the count.
int rank();
int local_rank();
int world_size();
/// world_size() > 1.
bool is_distributed();
/// Ends the job on every rank with `code`, now (MPI_Abort); in a world of one, std::exit(code). For an
/// error on one rank: the others may be waiting in a collective that will never complete.
[[noreturn]] void abort(int code);

// ---- collectives (every rank calls them, in the same order) ------------------------------------------------
enum class ReduceOp { Sum, Avg, Max, Min };

/// t = op over ranks of t, in place. Any shape (size 0 too); float32, float64 or int64 (Avg: floats only).
void all_reduce(Tensor& t, ReduceOp op = ReduceOp::Sum);
/// The same for one number: all_reduce(loss, ReduceOp::Avg) is the loss averaged over the ranks.
double all_reduce(double value, ReduceOp op = ReduceOp::Sum);
/// t = rank src's t, in place on every rank.
void broadcast(Tensor& t, int src = 0);
/// tensor_list[r] = rank r's t, for every r; tensor_list is resized to world_size() and filled with new tensors.
void all_gather(std::vector<Tensor>& tensor_list, const Tensor& t);
/// Returns when every rank has called it.
void barrier();

/// A collective started and not yet waited for (all_reduce_async). It owns the buffer it works on.
class Work {
 public:
  Work();
  /// Blocks until the collective completes; then the result is in the tensor that was passed.
  void wait();
  /// Lets MPI progress and says whether it has completed (never blocks).
  bool is_completed();
  ~Work();  // waits, so that MPI never writes into freed memory
  Work(Work&&) noexcept;
  Work& operator=(Work&&) noexcept;

  struct State;  // the MPI request and what to do on completion (dist.cpp)
 private:
  friend Work all_reduce_async(Tensor& t, ReduceOp op);
  std::unique_ptr<State> state_;
};
/// all_reduce, started now and finished by Work::wait(): computation may run meanwhile. `t` must be
/// contiguous, and must not be read or written until wait() returns.
Work all_reduce_async(Tensor& t, ReduceOp op = ReduceOp::Sum);

}  // namespace heed::dist
