// IDX (LeCun) reader and the Fashion-MNIST loader.
//
// Note [IDX reading]
// Files are opened with zlib's gzopen, which reads gzip and plain files alike. Before any payload
// is read, the memory the header's sizes imply (the bytes plus their float copy) is compared with
// the machine's (Note [Input sizes]): a header promising more fails with the numbers. Within that,
// the payload is read in bounded chunks and the vector grows as bytes arrive, so a header that
// claims more samples than the file holds fails with "truncated", and the decompressed size never
// exceeds what the header declares. Trailing bytes after the declared payload are an error too:
// they mean the header and the content disagree.
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/errors.h"
#include "core/limits.h"
#include "data/loaders.h"

namespace cohort::data {
namespace {

constexpr std::uint32_t kImagesMagic = 0x00000803u;  // u8, 3 dims
constexpr std::uint32_t kLabelsMagic = 0x00000801u;  // u8, 1 dim
constexpr std::size_t kChunkBytes = std::size_t{1} << 20;
// No IDX file we read comes near this; it only guards the size arithmetic.
constexpr std::uint64_t kMaxPayloadBytes = std::uint64_t{1} << 40;

class GzFile {
 public:
  explicit GzFile(const std::string& path) : path_(path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      throw UsageError("IDX file " + path +
                       " does not exist or is not a regular file (expected a gzip or plain IDX "
                       "file in the LeCun format)");
    }
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr) throw UsageError("cannot open IDX file " + path);
  }
  ~GzFile() {
    if (file_ != nullptr) gzclose(file_);
  }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;

  // Reads up to n bytes; returns how many were read. Throws on a zlib error (corrupt gzip).
  std::size_t read_some(unsigned char* dst, std::size_t n) {
    std::size_t done = 0;
    while (done < n) {
      const unsigned want = static_cast<unsigned>(std::min(n - done, kChunkBytes));
      const int got = gzread(file_, dst + done, want);
      if (got < 0) {
        int errnum = 0;
        const char* msg = gzerror(file_, &errnum);
        throw UsageError("IDX file " + path_ + " is corrupt: " + (msg ? msg : "read error"));
      }
      if (got == 0) break;
      done += static_cast<std::size_t>(got);
    }
    return done;
  }

  std::uint32_t read_be_u32(const char* what) {
    std::array<unsigned char, 4> b{};
    if (read_some(b.data(), 4) != 4) {
      throw UsageError("IDX file " + path_ + " is truncated: header ends before the " + what);
    }
    return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) |
           std::uint32_t{b[3]};
  }

  // Reads exactly n payload bytes (growing the buffer chunk by chunk, Note [IDX reading]) and
  // checks that nothing follows them.
  std::vector<unsigned char> read_payload(std::uint64_t n) {
    std::vector<unsigned char> out;
    while (out.size() < n) {
      const std::size_t want =
          static_cast<std::size_t>(std::min<std::uint64_t>(n - out.size(), 64 * kChunkBytes));
      const std::size_t old = out.size();
      out.resize(old + want);
      const std::size_t got = read_some(out.data() + old, want);
      if (got != want) {
        throw UsageError("IDX file " + path_ + " is truncated: the header announces " +
                         std::to_string(n) + " data bytes but only " + std::to_string(old + got) +
                         " are present");
      }
    }
    unsigned char extra = 0;
    if (read_some(&extra, 1) != 0) {
      throw UsageError("IDX file " + path_ + " has data after the " + std::to_string(n) +
                       " bytes its header announces");
    }
    return out;
  }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  gzFile file_ = nullptr;
};

std::string hex32(std::uint32_t v) {
  static const char* digits = "0123456789abcdef";
  std::string s = "0x";
  for (int shift = 28; shift >= 0; shift -= 4) s += digits[(v >> shift) & 0xFu];
  return s;
}

void check_magic(const GzFile& f, std::uint32_t magic, std::uint32_t expected, const char* kind) {
  if (magic != expected) {
    throw UsageError("IDX file " + f.path() + " has magic " + hex32(magic) + ", expected " +
                     hex32(expected) + " (" + kind + "); not an IDX " + kind + " file");
  }
}

std::string join(const std::string& dir, const char* name) {
  return (std::filesystem::path(dir) / name).string();
}

}  // namespace

Dataset read_idx_images(const std::string& path) {
  GzFile f(path);
  check_magic(f, f.read_be_u32("magic number"), kImagesMagic, "images, u8, 3 dims");
  const std::uint64_t n = f.read_be_u32("image count");
  const std::uint64_t r = f.read_be_u32("row count");
  const std::uint64_t c = f.read_be_u32("column count");
  if (r == 0 || c == 0 || r * c > kMaxPayloadBytes || n * r * c > kMaxPayloadBytes) {
    throw UsageError("IDX file " + path + " has implausible dimensions " + std::to_string(n) +
                     " x " + std::to_string(r) + " x " + std::to_string(c));
  }
  // The payload, then its float copy, are held at once.
  require_memory(static_cast<std::int64_t>(n * r * c * (1 + sizeof(float))),
                 "IDX file " + path + " (" + std::to_string(n) + " images of " + std::to_string(r) +
                     " x " + std::to_string(c) + " pixels)");
  const std::vector<unsigned char> bytes = f.read_payload(n * r * c);
  Dataset ds;
  ds.rows = static_cast<std::int64_t>(n);
  ds.dim = static_cast<std::int64_t>(r * c);
  ds.image = Shape{1, static_cast<std::int64_t>(r), static_cast<std::int64_t>(c)};
  ds.x.assign(bytes.begin(), bytes.end());
  return ds;
}

std::vector<std::int32_t> read_idx_labels(const std::string& path) {
  GzFile f(path);
  check_magic(f, f.read_be_u32("magic number"), kLabelsMagic, "labels, u8, 1 dim");
  const std::uint64_t n = f.read_be_u32("label count");
  require_memory(static_cast<std::int64_t>(n * (1 + sizeof(std::int32_t))),
                 "IDX file " + path + " (" + std::to_string(n) + " labels)");
  const std::vector<unsigned char> bytes = f.read_payload(n);
  return std::vector<std::int32_t>(bytes.begin(), bytes.end());
}

Option normalize_option() {
  return opt_enum_or_floats(
      "normalize", "dataset", {"dataset", "none"}, 2,
      "how pixels scaled to [0,1] are standardised, v -> (v - mean) / std: dataset (the "
      "training set's own mean and std over all pixels), none (left in [0,1]), or a given "
      "[mean, std], e.g. [0.1307, 0.3081]; std > 0");
}

Normalize Normalize::from_config(const Config& cfg) {
  Normalize n;
  if (cfg.is_list("data.normalize")) {
    const std::vector<double> v = cfg.get_float_list("data.normalize");
    n.kind = Kind::kGiven;
    n.mean = v.at(0);
    n.std = v.at(1);
    require_usage(std::isfinite(n.mean),
                  "data.normalize = [mean, std]: the mean must be a finite number");
    require_usage(n.std > 0 && std::isfinite(n.std),
                  fmt::format("data.normalize = [mean, std]: std = {} is not allowed: expected "
                              "a finite number > 0",
                              n.std));
    return n;
  }
  n.kind = cfg.get_string("data.normalize") == "none" ? Kind::kNone : Kind::kDataset;
  return n;
}

TrainTest load_fashion_mnist(const std::string& dir, const Normalize& normalize) {
  static constexpr std::array<const char*, 4> kFiles = {
      "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
      "t10k-labels-idx1-ubyte.gz"};
  for (const char* name : kFiles) {
    const std::string path = join(dir, name);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      throw UsageError("Fashion-MNIST file " + path + " not found. Expected the directory '" + dir +
                       "' to hold train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                       "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz. Install the "
                       "Debian package dataset-fashion-mnist (files land in " +
                       std::string(kFashionMnistDefaultDir) +
                       ") or set the config key data.path to the directory holding them.");
    }
  }

  TrainTest tt;
  tt.train = read_idx_images(join(dir, kFiles[0]));
  tt.train.labels = read_idx_labels(join(dir, kFiles[1]));
  tt.test = read_idx_images(join(dir, kFiles[2]));
  tt.test.labels = read_idx_labels(join(dir, kFiles[3]));

  auto check = [&](const Dataset& ds, const char* images, const char* labels) {
    if (static_cast<std::int64_t>(ds.labels.size()) != ds.rows) {
      throw UsageError("Fashion-MNIST: " + join(dir, images) + " holds " + std::to_string(ds.rows) +
                       " images but " + join(dir, labels) + " holds " +
                       std::to_string(ds.labels.size()) + " labels");
    }
    for (const std::int32_t y : ds.labels) {
      if (y < 0 || y > 9) {
        throw UsageError("Fashion-MNIST: " + join(dir, labels) + " holds label " +
                         std::to_string(y) + " (allowed: 0..9)");
      }
    }
  };
  check(tt.train, kFiles[0], kFiles[1]);
  check(tt.test, kFiles[2], kFiles[3]);
  if (tt.train.image != tt.test.image || tt.train.rows == 0) {
    throw UsageError("Fashion-MNIST in " + dir +
                     ": training set is empty or train/test image "
                     "sizes differ (" +
                     std::to_string(tt.train.dim) + " vs " + std::to_string(tt.test.dim) +
                     " pixels)");
  }
  tt.train.num_classes = 10;
  tt.test.num_classes = 10;

  double mean = 0.0, stddev = 1.0;  // data.normalize = none
  if (normalize.kind == Normalize::Kind::kGiven) {
    mean = normalize.mean;
    stddev = normalize.std;
  } else if (normalize.kind == Normalize::Kind::kDataset) {
    // Pixels are integers 0..255, so the sums are exact integers: the statistics do not depend
    // on summation order. Population standard deviation of pixel/255 over all training pixels.
    std::uint64_t s1 = 0, s2 = 0;
    for (const float v : tt.train.x) {
      const auto p = static_cast<std::uint64_t>(v);
      s1 += p;
      s2 += p * p;
    }
    const double count = static_cast<double>(tt.train.x.size());
    mean = static_cast<double>(s1) / count / 255.0;
    const double var = static_cast<double>(s2) / count / (255.0 * 255.0) - mean * mean;
    stddev = std::sqrt(std::max(var, 0.0));
    if (!(stddev > 0.0)) {
      throw UsageError("Fashion-MNIST in " + dir +
                       ": training pixels are all equal, so data.normalize = dataset has no "
                       "standard deviation to divide by; corrupt data (or set data.normalize "
                       "to none or [mean, std])");
    }
  }
  std::array<float, 256> table{};
  for (int p = 0; p < 256; ++p) table[p] = static_cast<float>((p / 255.0 - mean) / stddev);
  for (Dataset* ds : {&tt.train, &tt.test}) {
    for (float& v : ds->x) v = table[static_cast<std::size_t>(v)];
  }
  return tt;
}

SourceRegistration fashion_mnist_registration() {
  return {"fashion_mnist",
          "Fashion-MNIST (Debian package dataset-fashion-mnist), 784 features, 10 classes",
          {opt_string("path", kFashionMnistDefaultDir, "directory with the four IDX .gz files"),
           normalize_option()},
          [](const Config& cfg) {
            return LoadedData{
                load_fashion_mnist(cfg.get_string("data.path"), Normalize::from_config(cfg)),
                {}};
          }};
}

}  // namespace cohort::data
