// Dataset readers and synthetic generators, and the data sources built on them. Every function
// throws cohort::UsageError for bad input (missing file, malformed content, impossible parameter)
// with a message that names the file (and line) or the parameter and what is allowed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/registration.h"
#include "data/dataset.h"

namespace cohort::data {

// How image pixels, scaled to [0,1], are standardised (data.normalize): v -> (v - mean) / std
// with the training set's own mean and population standard deviation over all pixels
// (dataset), with a given pair (the reference code's 0.1307 and 0.3081 are MNIST's), or not at
// all (none: the pixels stay in [0,1]).
struct Normalize {
  enum class Kind { kDataset, kNone, kGiven };
  Kind kind = Kind::kDataset;
  double mean = 0, std = 1;  // kGiven
  // data.normalize; UsageError for a std that is not a positive number or a mean that is not
  // finite.
  static Normalize from_config(const Config& cfg);
};
// The data.normalize option of the image sources.
Option normalize_option();

// Fashion-MNIST from a directory holding the four gzip IDX files
// (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,
// t10k-labels-idx1-ubyte.gz), with the test files under the t10k names. Pixels are scaled to
// [0,1] and then standardised as `normalize` says (by default with the training set's mean and
// standard deviation, one scalar each).
inline constexpr const char* kFashionMnistDefaultDir = "/usr/share/datasets/fashion-mnist";
TrainTest load_fashion_mnist(const std::string& dir, const Normalize& normalize = {});

// One gzip (or plain) IDX file: images (magic 0x803, u8, n x r x c) -> rows = n, dim = r*c,
// raw pixel values 0..255 as floats; labels (magic 0x801) -> labels vector.
Dataset read_idx_images(const std::string& path);
std::vector<std::int32_t> read_idx_labels(const std::string& path);

// LIBSVM text: "label idx:value idx:value ..." (1-based indices, ascending), '#' comments and
// blank lines skipped; dense lines (no idx:) are accepted too. dim = 0 means "largest index
// seen". Classification (regression == false) remaps the distinct labels, sorted ascending,
// to 0..C-1; regression keeps them as float targets.
Dataset read_libsvm(const std::string& path, std::int64_t dim, bool regression);
void write_libsvm(const std::string& path, const Dataset& ds);  // dense, used by tests

// Splits a dataset: a fraction of the rows, chosen by a keyed stream, becomes the test set.
// test_fraction in [0, 1); the test set gets round(test_fraction * rows) rows (half up), at least
// one when test_fraction > 0 and rows >= 2, never all of them. Both parts keep the input order.
TrainTest split_train_test(const Dataset& all, double test_fraction, std::uint64_t seed);

// Synthetic problems that come with their natural partition (one block of rows per client).
struct SyntheticResult {
  TrainTest data;
  Partition partition;  // natural partition of data.train
};
// Linear regression: x ~ N(0, I_dim), t = w*.x + noise * N(0,1), w* ~ N(0, I) from the seed.
// Each client gets samples_per_client training rows and a share of the test rows:
// round(samples_per_client * test_fraction / (1 - test_fraction)) test rows per client, so that
// test_fraction of all rows are test rows. Client k's training rows are the contiguous block
// [k * samples_per_client, (k + 1) * samples_per_client).
SyntheticResult synthetic_linear(int num_clients, std::int64_t samples_per_client,
                                 std::int64_t dim, double noise, double test_fraction,
                                 std::uint64_t seed);
// "synthetic(alpha, beta)" of the FedProx paper (Li et al. 2020): per client
// u_k ~ N(0, alpha), W_k ~ N(u_k, 1), b_k ~ N(u_k, 1); B_k ~ N(0, beta), v_k ~ N(B_k, 1);
// x ~ N(v_k, Sigma) with Sigma diagonal, Sigma_jj = j^-1.2; y = argmax softmax(W_k x + b_k).
// alpha and beta are standard deviations, as in the reference code (np.random.normal(0, alpha)).
// Sample counts per client follow the reference generator: n_k = min_samples +
// int(exp(N(4, 2))), except that the lognormal part is capped at kFedproxMaxExtra (the
// untruncated law has a heavy tail: about one client in 80 would exceed 5000 rows, one in 740
// would exceed 22000).
// test_fraction of each client's rows go to the pooled test set: round(test_fraction * n_k),
// at least one when test_fraction > 0 and n_k >= 2, never all of them. The rest form client k's
// contiguous block of training rows, in generation order.
inline constexpr std::int64_t kFedproxMaxExtra = 5000;
SyntheticResult synthetic_fedprox(int num_clients, double alpha, double beta, std::int64_t dim,
                                  int num_classes, std::int64_t min_samples,
                                  double test_fraction, std::uint64_t seed);

// What a data source gives: the train and test sets and the natural partition of the training
// rows (one block per client: synthetic and inline data; empty for the others).
struct LoadedData {
  TrainTest data;
  Partition natural;
};

// A data source's schema entry and loader (Note [Registration]): it reads the data.* keys it
// declares, and clients.num_clients and seed where the data depends on them. The data slot's
// list is in algo/problem.cpp, beside the sources that are not datasets (quadratic).
using SourceRegistration = Registration<LoadedData(const Config& cfg)>;
SourceRegistration fashion_mnist_registration();      // idx.cpp
SourceRegistration libsvm_registration();             // libsvm.cpp
SourceRegistration synthetic_linear_registration();   // synthetic.cpp
SourceRegistration synthetic_fedprox_registration();  // synthetic.cpp
SourceRegistration inline_registration();             // inline.cpp

}  // namespace cohort::data
