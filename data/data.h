// data.h: datasets and the DataLoader. Everything here works offline, from files Debian installs.
//
//   read_idx, load_idx_images    the IDX format of MNIST-style data sets, raw or gzipped
//   load_fashion_mnist           Fashion-MNIST from the package dataset-fashion-mnist, checksummed
//   load_fortunes                a character-level text corpus from the package fortunes
//   mixture_of_gaussians         points with known clusters (for k-means, clustering metrics, tests)
//   session_sequences            item sequences from a known latent-factor model (for recommenders)
//   load_movielens               MovieLens ratings (ML-100K u.data, ML-1M ratings.dat) as item sequences
//   TensorDataset, DataLoader    batches of rows, shuffled reproducibly
//
// A typical training loop:
//
//   data::FashionMNIST train = data::load_fashion_mnist(true);
//   data::DataLoader loader(data::TensorDataset{{train.images, train.labels}},
//                           {.batch_size = 128, .shuffle = true, .seed = 1});
//   for (int epoch = 0; epoch < 10; ++epoch)
//     for (auto& batch : loader) {          // each range-for is one epoch, in a new order
//       Tensor x = batch[0], y = batch[1];  // (128,1,28,28) float32, (128) int64
//       ...
//     }
//
// Errors are heed::Error, with a message that starts with the function's name and shows the values.
#pragma once
#include <algorithm>
#include <array>
#include <concepts>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "io/file.h"  // io::Sha256 checks the files
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace heed::data {

// ---- IDX files -----------------------------------------------------------------------------------------
/// The element type named by an IDX file's third byte. Values are stored big-endian.
enum class IdxType : uint8_t { UByte = 0x08, SByte = 0x09, Short = 0x0B, Int = 0x0C, Float = 0x0D, Double = 0x0E };

/// One decompressed IDX file: its decoded header and all of its bytes (header included, so that a
/// checksum of `bytes` is a checksum of the file's content).
struct IdxFile {
  IdxType type = IdxType::UByte;
  Shape shape;
  std::vector<uint8_t> bytes;
  size_t data_offset = 0;  // where the elements start: 4 + 4 * shape.size()
  const uint8_t* data() const { return bytes.data() + data_offset; }
};

/// The largest element payload read_idx_file accepts unless told otherwise: 1 GiB. (Fashion-MNIST's
/// largest file holds 47 MB.) A header asking for more is refused before anything is allocated.
inline constexpr int64_t kIdxMaxBytes = int64_t(1) << 30;

/// Reads an IDX file, gzipped or raw (zlib tells them apart by the gzip magic). Checks the magic, the
/// type code, 1..4 dims, the payload size against max_bytes, and that the file holds exactly the bytes
/// the header promises: not fewer (a truncated file), not more.
IdxFile read_idx_file(const std::string& path, int64_t max_bytes = kIdxMaxBytes);

/// An IDX file as a tensor of its shape. heed has no 8/16/32-bit integer dtypes, so every integer type
/// (ubyte, sbyte, short, int) becomes int64, exactly; float becomes float32 and double float64.
/// (For images as float32 without the int64 detour, use load_idx_images.)
Tensor read_idx(const std::string& path);

// ---- labelled images: Fashion-MNIST, MNIST ---------------------------------------------------------------
/// How 0..255 pixels map to floats: x/255 in [0,1], or 2x/255 - 1 in [-1,1] (for tanh decoders and GANs).
enum class Scale { ZeroOne, MinusOneOne };

struct LabeledImages {
  Tensor images;  // (N,1,H,W) float32
  Tensor labels;  // (N) int64
};
using FashionMNIST = LabeledImages;

/// Fashion-MNIST's ten classes, in label order.
inline constexpr std::array<const char*, 10> fashion_mnist_classes = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

/// Any IDX image/label pair: images ubyte (N,H,W), labels ubyte (N). A non-empty sha256 is the expected
/// SHA-256 of that file's decompressed bytes; a mismatch throws, naming the file and both digests.
LabeledImages load_idx_images(const std::string& images_path, const std::string& labels_path,
                              Scale scale = Scale::ZeroOne, const std::string& images_sha256 = "",
                              const std::string& labels_sha256 = "");

/// Fashion-MNIST (Xiao, Rasul and Vollgraf 2017): 60000 training or 10000 test images (N,1,28,28) of
/// clothing, with labels 0..9 (fashion_mnist_classes). Each file's decompressed bytes are checked against
/// the SHA-256 recorded in data.cpp.
FashionMNIST load_fashion_mnist(bool train, Scale scale = Scale::ZeroOne,
                                const std::string& dir = "/usr/share/datasets/fashion-mnist");

// ---- a character-level text corpus ---------------------------------------------------------------------
/// Text as byte tokens. The vocabulary is every byte value that occurs, sorted as unsigned bytes; token i
/// is vocab[i]. Multi-byte UTF-8 characters are several tokens, as in a byte-level language model.
struct CharCorpus {
  std::string text;        // the whole corpus
  std::vector<char> vocab; // sorted unique bytes of `text`
  Tensor train, val;       // (n_train), (n_val) int64 token ids: the text split in two

  /// (len) int64 token ids; throws on a byte that is not in the vocabulary.
  Tensor encode(const std::string& s) const;
  /// Token ids (any shape, int64) back to text, in row-major order; throws on an id outside the vocabulary.
  std::string decode(const Tensor& ids) const;
  /// Builds vocab and the byte-to-id table from `text`.
  void build_vocab();

  std::array<int32_t, 256> id_of{};  // byte (as unsigned) -> token id, or -1
};

/// The fortune cookies of Debian's `fortunes` package (about 2.5 MB of English). Reads the plain-text
/// files of `dir` in sorted name order; skips the strfile indexes (*.dat), the *.u8 names (symlinks to
/// the same text), any other symlink and every sub-folder (fortunes-off installs its files in off/).
/// A fortune is the text between lines holding only "%"; `text` is every non-empty fortune followed by
/// the line "%", in file order. The split is by fortune: a fixed-seed shuffle (Generator(0)) picks
/// round(val_fraction * count) fortunes for `val`; both parts keep the file order and their "%" lines.
/// Why not a contiguous split (the last 10% of the text, as nanoGPT's shakespeare_char)? The files are
/// sorted by name and each is one topic (art, computers, love, ...), so the tail of the corpus is a
/// few topics the model never trains on, and the validation loss would measure topic shift, not
/// generalisation. Whole fortunes drawn from every file keep both parts alike, and no fortune is cut in two.
CharCorpus load_fortunes(double val_fraction = 0.1, const std::string& dir = "/usr/share/games/fortunes");

// ---- synthetic data with known structure ----------------------------------------------------------------
struct Mixture {
  Tensor points;   // (n,dim) float32
  Tensor labels;   // (n) int64 in 0..k-1, each cluster n/k or n/k+1 points
  Tensor centres;  // (k,dim) float32
};
/// n points from k spherical Gaussians in `dim` dimensions: centres ~ spread * N(0, I), then each point is
/// its centre plus N(0, I). Two centres lie spread * sqrt(2 dim) apart on average, so spread 10 in 8 or
/// more dimensions gives clusters that never touch. Labels are balanced and in random order.
Mixture mixture_of_gaussians(int64_t n, int64_t k, int64_t dim, uint64_t seed = 0, double spread = 10.0);

struct Sessions {
  Tensor sequences;     // (n_users, seq_len) int64 item ids
  Tensor user_factors;  // (n_users, n_factors) float32, U
  Tensor item_factors;  // (n_items, n_factors) float32, V
};
/// One item sequence per user from a known latent-factor model, with F = n_factors:
///   U ~ N(0, I) per user, V ~ N(0, I) per item;
///   the first item:  P(j) = softmax_j( U_u . V_j / sqrt(F) )
///   each next item:  P(j) = softmax_j( (U_u + V_prev) . V_j / sqrt(F) ),  j != prev (no immediate repeats)
/// So a user's taste (U_u) and the item just seen (V_prev) together pick the next item: a recommender that
/// reads the sequence can learn both. next_item_logits gives the model's exact logits, for an oracle.
Sessions session_sequences(int64_t n_users, int64_t n_items, int64_t seq_len, int64_t n_factors, uint64_t seed = 0);
/// The true model's logits for the next item: (B, n_items) float64 for users (B) and prev_items (B) int64,
/// where prev_item -1 means "no item yet". A masked repeat has logit -inf.
Tensor next_item_logits(const Sessions& s, const Tensor& users, const Tensor& prev_items);

// ---- user-item interactions: MovieLens -----------------------------------------------------------------
/// One item sequence per user, oldest first: what a sequential recommender trains on.
struct UserSequences {
  std::vector<std::vector<int64_t>> items;  // items[u]: user u's items, ids 0..n_items-1, in time order
  std::vector<int64_t> user_ids, item_ids;  // the file's ids: user u is user_ids[u], item i is item_ids[i]
  int64_t n_items = 0;
};
/// The MovieLens ratings of `path` as item sequences: ML-100K's u.data (user TAB item TAB rating TAB
/// timestamp) or ML-1M's ratings.dat (user::item::rating::timestamp), told apart by the first line. Every
/// rating is an interaction whatever its value, as in SASRec. Each user's ratings are ordered by timestamp
/// (equal timestamps keep the file's order). Users with fewer than min_length ratings are dropped; the rest,
/// and the items they rated, are numbered 0.. in the order of their ids in the file. A malformed line throws,
/// naming the file and the line number.
UserSequences load_movielens(const std::string& path, int64_t min_length = 1);

// ---- shuffling -----------------------------------------------------------------------------------------
/// A uniformly random permutation of 0..n-1, by Fisher–Yates: for i = n-1 down to 1, swap element i with
/// element j, where j = (64 random bits from two draws of gen) mod (i+1) (bias below 2^-32, as randint).
std::vector<int64_t> random_permutation(int64_t n, Generator& gen);

// ---- datasets and the DataLoader ------------------------------------------------------------------------
/// Rows of tensors that share their first dim: sample i is {t[i] for t in tensors}. Batching is one
/// index_select per tensor, so it is the fast path for in-memory data.
struct TensorDataset {
  std::vector<Tensor> tensors;

  int64_t size() const;  /// the shared first dim; throws if the tensors disagree or one is 0-d
  /// The rows at `indices` ((B) int64) of each tensor: {index_select(t, 0, indices) for t in tensors}.
  std::vector<Tensor> get_batch(const Tensor& indices) const;
  /// Row i of each tensor (views).
  std::vector<Tensor> get(int64_t i) const;
};

/// A dataset the loader batches in one call (TensorDataset is one).
template <class D>
concept BatchDataset = requires(const D& d, const Tensor& indices) {
  { d.size() } -> std::convertible_to<int64_t>;
  d.get_batch(indices);
};
/// A dataset the loader batches sample by sample: get(i) returns a Tensor or a std::vector<Tensor>
/// (stacked into a batch along a new dim 0 by `collate`), or anything else when the dataset also has a
/// `collate(const std::vector<Sample>&)`.
template <class D>
concept SampleDataset = requires(const D& d, int64_t i) {
  { d.size() } -> std::convertible_to<int64_t>;
  d.get(i);
};

/// Stacks samples into a batch: Tensors along a new dim 0; vectors of Tensors component by component.
Tensor collate(const std::vector<Tensor>& samples);
std::vector<Tensor> collate(const std::vector<std::vector<Tensor>>& samples);

/// The batch of `dataset` at the samples `indices`: get_batch if the dataset has it, else get + collate.
template <class Dataset>
auto make_batch(const Dataset& dataset, const std::vector<int64_t>& indices);

struct LoaderOptions {
  int64_t batch_size = 1;
  bool shuffle = false;    // a new order every epoch, from (seed, epoch) only
  uint64_t seed = 0;
  bool drop_last = false;  // skip the last batch when it is smaller than batch_size
};

/// Batches of a dataset, in order or shuffled. Each `for (auto& batch : loader)` is one epoch: begin()
/// fixes that epoch's order and moves the loader on to the next epoch. With shuffle, epoch e's order is
/// random_permutation(n, gen) with gen = Generator(seed) at offset e * 2^40: a function of (seed, e)
/// alone, so every run sees the same batches, and epochs never share random draws.
///
/// The loader holds the dataset by value: a TensorDataset is a few tensor handles, so that is cheap; a
/// large dataset of your own should be a cheap handle too.
template <class Dataset>
class DataLoader {
  static_assert(BatchDataset<Dataset> || SampleDataset<Dataset>,
                "DataLoader: the dataset needs `int64_t size() const` and either "
                "`get_batch(const Tensor& indices) const` or `get(int64_t i) const`");

 public:
  using Batch = decltype(make_batch(std::declval<const Dataset&>(), std::declval<const std::vector<int64_t>&>()));

  DataLoader(Dataset dataset, LoaderOptions options);

  /// Batches per epoch: ceil(n / batch_size), or floor with drop_last.
  int64_t size() const;
  const Dataset& dataset() const { return dataset_; }
  const LoaderOptions& options() const { return options_; }
  /// The epoch the next begin() will run (0 at first).
  int64_t epoch() const { return epoch_; }
  void set_epoch(int64_t epoch);
  /// The sample order of an epoch: 0..n-1, or its shuffle.
  std::vector<int64_t> order(int64_t epoch) const;
  /// Batch b of an order: the samples order[b*batch_size ...], collated.
  Batch batch(const std::vector<int64_t>& order, int64_t b) const;

  class Iterator {
   public:
    Iterator(const DataLoader* loader, std::shared_ptr<const std::vector<int64_t>> order, int64_t b)
        : loader_(loader), order_(std::move(order)), b_(b) {}
    /// The batch is built on first access and kept, so `auto& batch` can bind to it.
    Batch& operator*() {
      if (!current_) current_ = std::make_unique<Batch>(loader_->batch(*order_, b_));
      return *current_;
    }
    Iterator& operator++() {
      ++b_;
      current_.reset();
      return *this;
    }
    bool operator==(const Iterator& o) const { return b_ == o.b_; }

   private:
    const DataLoader* loader_;
    std::shared_ptr<const std::vector<int64_t>> order_;
    int64_t b_;
    std::unique_ptr<Batch> current_;
  };

  /// Starts epoch epoch(): builds its order, then advances epoch() by one.
  Iterator begin();
  Iterator end() const { return Iterator(this, nullptr, size()); }

 private:
  Dataset dataset_;
  LoaderOptions options_;
  int64_t epoch_ = 0;
};

// ---- DataLoader definitions ----------------------------------------------------------------------------

template <class Dataset>
auto make_batch(const Dataset& dataset, const std::vector<int64_t>& indices) {
  if constexpr (BatchDataset<Dataset>) {
    return dataset.get_batch(from_vector(indices, Shape{(int64_t)indices.size()}));
  } else {
    using Sample = std::decay_t<decltype(dataset.get(int64_t{0}))>;
    std::vector<Sample> samples;
    samples.reserve(indices.size());
    for (int64_t i : indices) samples.push_back(dataset.get(i));
    if constexpr (requires { dataset.collate(samples); })
      return dataset.collate(samples);
    else
      return collate(samples);  // Tensor or std::vector<Tensor>; any other Sample needs a Dataset::collate
  }
}

template <class Dataset>
DataLoader<Dataset>::DataLoader(Dataset dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), options_(options) {
  if (options_.batch_size < 1)
    throw Error("DataLoader: batch_size must be at least 1, got " + std::to_string(options_.batch_size));
  int64_t n = dataset_.size();
  if (n < 0) throw Error("DataLoader: the dataset reports a negative size " + std::to_string(n));
}

template <class Dataset>
int64_t DataLoader<Dataset>::size() const {
  int64_t n = dataset_.size(), bs = options_.batch_size;
  // ceil(n / bs) without n + bs - 1, which overflows for bs = INT64_MAX (and gave 0 batches).
  return options_.drop_last ? n / bs : (n == 0 ? 0 : 1 + (n - 1) / bs);
}

template <class Dataset>
void DataLoader<Dataset>::set_epoch(int64_t epoch) {
  if (epoch < 0) throw Error("DataLoader::set_epoch: epoch must be >= 0, got " + std::to_string(epoch));
  epoch_ = epoch;
}

template <class Dataset>
std::vector<int64_t> DataLoader<Dataset>::order(int64_t epoch) const {
  if (epoch < 0) throw Error("DataLoader::order: epoch must be >= 0, got " + std::to_string(epoch));
  int64_t n = dataset_.size();
  if (!options_.shuffle) {
    std::vector<int64_t> identity(n);
    for (int64_t i = 0; i < n; ++i) identity[i] = i;
    return identity;
  }
  // A permutation of n takes 2(n-1) draws; 2^40 draws per epoch is room for any n that fits in memory,
  // so the epochs' draws never overlap.
  Generator gen(options_.seed);
  gen.set_offset((uint64_t)epoch << 40);
  return random_permutation(n, gen);
}

template <class Dataset>
typename DataLoader<Dataset>::Batch DataLoader<Dataset>::batch(const std::vector<int64_t>& order, int64_t b) const {
  int64_t n = (int64_t)order.size(), bs = options_.batch_size;
  // b < ceil(n / bs), tested by division: b * bs can overflow.
  if (b < 0 || n == 0 || b > (n - 1) / bs)
    throw Error("DataLoader::batch: batch " + std::to_string(b) + " out of range for " + std::to_string(n) +
                " samples in batches of " + std::to_string(bs));
  int64_t start = b * bs, stop = start + std::min(bs, n - start);
  return make_batch(dataset_, std::vector<int64_t>(order.begin() + start, order.begin() + stop));
}

template <class Dataset>
typename DataLoader<Dataset>::Iterator DataLoader<Dataset>::begin() {
  auto ord = std::make_shared<const std::vector<int64_t>>(order(epoch_));
  ++epoch_;
  return Iterator(this, std::move(ord), 0);
}

}  // namespace heed::data
