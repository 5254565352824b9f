// dist.cpp: heed::dist over MPI, and the world of one when there is no MPI job (see dist.h).
//
// Each collective checks its arguments, then takes one of two paths: the world of one (return at once,
// the tensor already holds the answer), or MPI. The MPI path is compiled only when CMake found MPI
// (HEED_HAVE_MPI); without it, a process that mpirun started as one of several refuses to run, rather
// than train alone while believing it has company.
#include "dist/dist.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "autograd/node.h"
#include "tensor/error.h"

#if HEED_HAVE_MPI
#include <mpi.h>
#endif

namespace heed::dist {

namespace {

struct World {
  bool initialized = false;
  bool mpi = false;  // joined an MPI job (MPI_Init was called)
  int rank = 0, local_rank = 0, size = 1;
};
World g_world;

// mpirun (OpenMPI's, and PMI/PMIx launchers such as Slurm's srun) sets these in every process it starts.
int launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* v = std::getenv(name)) return std::atoi(v);
  if (std::getenv("PMIX_RANK")) return 2;  // launched by PMIx without a size: at least not alone
  return 1;
}

// The first element of a contiguous tensor, for MPI (which takes the element type separately).
void* raw(const Tensor& t) {
  return t.numel() ? static_cast<char*>(t.storage()->data) + t.offset() * dtype_size(t.dtype()) : nullptr;
}

// The checks every collective shares: a defined tensor of a dtype MPI can carry.
void check_tensor(const char* op, const Tensor& t) {
  if (!t.defined()) throw Error(std::string(op) + ": the tensor is undefined");
  if (t.dtype() == DType::Bool)
    throw Error(std::string(op) + ": bool tensors are not supported (" + shape_str(t.shape()) +
                " bool); use float32, float64 or int64");
  if (t.numel() > (int64_t)INT32_MAX)
    throw Error(std::string(op) + ": " + std::to_string(t.numel()) +
                " elements is more than one MPI call carries (2^31-1)");
}

void check_op(const char* what, const Tensor& t, ReduceOp op) {
  check_tensor(what, t);
  if (op == ReduceOp::Avg && !is_floating(t.dtype()))
    throw Error(std::string(what) + ": ReduceOp::Avg needs a float tensor, got " + dtype_name(t.dtype()) +
                " (use Sum and divide)");
}

// Writes `src` (contiguous, same shape) into `t`, which may be a strided view, without recording a graph.
void write_back(Tensor& t, const Tensor& src) {
  if (src.is_same(t)) return;
  NoGradGuard no_grad;
  t.copy_(src);
}

#if HEED_HAVE_MPI
MPI_Datatype mpi_type(DType d) {
  switch (d) {
    case DType::Float32: return MPI_FLOAT;
    case DType::Float64: return MPI_DOUBLE;
    case DType::Int64: return MPI_INT64_T;
    default: return MPI_DATATYPE_NULL;  // Bool: refused by check_tensor
  }
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Max: return MPI_MAX;
    case ReduceOp::Min: return MPI_MIN;
    default: return MPI_SUM;  // Avg is a Sum, then a division by the world size
  }
}

// An exception that escapes main, or a std::terminate anywhere, on one rank would leave the others
// waiting in a collective for ever. This makes it end the whole job instead.
void terminate_job() {
  std::fprintf(stderr, "heed::dist: rank %d terminated (an uncaught exception?); aborting the MPI job\n", g_world.rank);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}
#endif

void divide_by_world(Tensor& t) {
  NoGradGuard no_grad;
  t.mul_(1.0 / g_world.size);
}

}  // namespace

// ---- the world -------------------------------------------------------------------------------------------
void init() {
  if (g_world.initialized) return;
  g_world.initialized = true;
  const int launched = launcher_world_size();
  if (launched <= 1) return;  // not under mpirun (or -np 1): a world of one, and no MPI at all
#if HEED_HAVE_MPI
  // FUNNELED: heed's OpenMP threads never call MPI; only the thread that called init does.
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  g_world.mpi = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_world.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_world.size);
  MPI_Comm local;  // the ranks that share this host's memory
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_world.rank, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &g_world.local_rank);
  MPI_Comm_free(&local);
  std::set_terminate(terminate_job);
  std::atexit(finalize_at_exit);
#else
  throw Error("dist::init: mpirun started " + std::to_string(launched) +
              " processes, but this heed was built without MPI (HEED_MPI=OFF or MPI not found); install "
              "libopenmpi-dev and rebuild, or run a single process");
#endif
}

bool mpi_available() {
#if HEED_HAVE_MPI
  return true;
#else
  return false;
#endif
}

int rank() { init(); return g_world.rank; }
int local_rank() { init(); return g_world.local_rank; }
int world_size() { init(); return g_world.size; }
bool is_distributed() { return world_size() > 1; }

void abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
#if HEED_HAVE_MPI
  if (g_world.mpi) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

// ---- collectives -------------------------------------------------------------------------------------------
void all_reduce(Tensor& t, ReduceOp op) {
  check_op("all_reduce", t, op);
  if (!is_distributed()) return;  // the sum, max, min and mean over one rank is the tensor itself
#if HEED_HAVE_MPI
  Tensor buf = t.contiguous();
  MPI_Allreduce(MPI_IN_PLACE, raw(buf), (int)buf.numel(), mpi_type(t.dtype()),
                mpi_op(op), MPI_COMM_WORLD);
  if (op == ReduceOp::Avg) divide_by_world(buf);
  write_back(t, buf);
  t.storage()->version++;  // an in-place write, as far as saved tensors are concerned
#endif
}

double all_reduce(double value, ReduceOp op) {
  Tensor t = from_vector(std::vector<double>{value});
  all_reduce(t, op);
  return t.item();
}

void broadcast(Tensor& t, int src) {
  check_tensor("broadcast", t);
  if (src < 0 || src >= world_size())
    throw Error("broadcast: src " + std::to_string(src) + " is not a rank of a world of " +
                std::to_string(world_size()));
  if (!is_distributed()) return;
#if HEED_HAVE_MPI
  Tensor buf = t.contiguous();
  MPI_Bcast(raw(buf), (int)buf.numel(), mpi_type(t.dtype()), src, MPI_COMM_WORLD);
  write_back(t, buf);
  t.storage()->version++;
#endif
}

void all_gather(std::vector<Tensor>& tensor_list, const Tensor& t) {
  check_tensor("all_gather", t);
  const int p = world_size();
  tensor_list.clear();
  if (!is_distributed()) {
    tensor_list.push_back(t.detach().clone());
    return;
  }
#if HEED_HAVE_MPI
  Tensor in = t.contiguous();
  Shape gathered_shape = t.shape();
  gathered_shape.insert(gathered_shape.begin(), p);
  Tensor out = empty(gathered_shape, t.dtype());  // (p, ...t's shape): rank r's tensor at out[r]
  const int n = (int)t.numel();
  MPI_Allgather(raw(in), n, mpi_type(t.dtype()), raw(out), n,
                mpi_type(t.dtype()), MPI_COMM_WORLD);
  for (int r = 0; r < p; ++r) tensor_list.push_back(out.select(0, r));
#endif
}

void barrier() {
  if (!is_distributed()) return;
#if HEED_HAVE_MPI
  MPI_Barrier(MPI_COMM_WORLD);
#endif
}

// ---- non-blocking all-reduce ----------------------------------------------------------------------------------
struct Work::State {
  Tensor t;  // keeps the buffer alive while MPI writes into it
  ReduceOp op = ReduceOp::Sum;
  bool done = false;
#if HEED_HAVE_MPI
  MPI_Request request = MPI_REQUEST_NULL;
#endif
  void finish() {
    done = true;
    if (op == ReduceOp::Avg) divide_by_world(t);
    t.storage()->version++;
  }
};

Work all_reduce_async(Tensor& t, ReduceOp op) {
  check_op("all_reduce_async", t, op);
  if (!t.is_contiguous())
    throw Error("all_reduce_async: the tensor " + shape_str(t.shape()) + " must be contiguous (MPI writes into it "
                "while the caller works on; call contiguous() first and keep that tensor)");
  Work w;
  w.state_ = std::make_unique<Work::State>();
  w.state_->t = t;
  w.state_->op = op;
  if (!is_distributed()) {
    w.state_->done = true;
    return w;
  }
#if HEED_HAVE_MPI
  MPI_Iallreduce(MPI_IN_PLACE, raw(t), (int)t.numel(), mpi_type(t.dtype()),
                 mpi_op(op), MPI_COMM_WORLD, &w.state_->request);
#endif
  return w;
}

void Work::wait() {
  if (!state_ || state_->done) return;
#if HEED_HAVE_MPI
  MPI_Wait(&state_->request, MPI_STATUS_IGNORE);
#endif
  state_->finish();
}

bool Work::is_completed() {
  if (!state_ || state_->done) return true;
#if HEED_HAVE_MPI
  int flag = 0;
  MPI_Test(&state_->request, &flag, MPI_STATUS_IGNORE);  // also drives MPI's progress engine
  if (flag) state_->finish();
#endif
  return state_->done;
}

Work::Work() = default;
Work::~Work() {
  if (!state_ || state_->done) return;
  // During an exception the job is ending (main_guard aborts it); waiting could hang on a dead peer, and
  // freeing the buffer could let MPI write into freed memory, so the buffer is left to the process's end.
  if (std::uncaught_exceptions()) (void)state_.release();
  else wait();
}
Work::Work(Work&&) noexcept = default;
Work& Work::operator=(Work&& o) noexcept {
  if (this != &o) {
    wait();
    state_ = std::move(o.state_);
  }
  return *this;
}

}  // namespace heed::dist
