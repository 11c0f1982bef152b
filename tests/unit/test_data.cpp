// Data layer: IDX / Fashion-MNIST, LIBSVM, partitioners, splits and synthetic generators.
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "data/loaders.h"
#include "data/partition.h"
#include "test_support.h"

namespace fs = std::filesystem;
using cohort::UsageError;
using namespace cohort::data;
using cohort::test::TempDir;
using cohort::test::usage_error_of;

namespace {

void write_bytes(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

void write_gz(const std::string& path, const std::vector<unsigned char>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) ==
          static_cast<int>(bytes.size()));
  gzclose(f);
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::vector<unsigned char> idx_header(std::uint32_t magic, std::vector<std::uint32_t> dims) {
  std::vector<unsigned char> h;
  dims.insert(dims.begin(), magic);
  for (const std::uint32_t v : dims) {
    for (int shift = 24; shift >= 0; shift -= 8)
      h.push_back(static_cast<unsigned char>(v >> shift));
  }
  return h;
}

const TrainTest& fashion() {
  static const TrainTest tt = load_fashion_mnist(kFashionMnistDefaultDir);
  return tt;
}

// Every index in 0..rows-1 appears exactly once; each list is sorted ascending.
void require_exact_cover(const Partition& p, std::int64_t rows) {
  std::vector<int> seen(static_cast<std::size_t>(rows), 0);
  std::int64_t out_of_range = 0;
  for (const auto& idx : p) {
    REQUIRE(std::is_sorted(idx.begin(), idx.end()));
    for (const std::int64_t i : idx) {
      if (i < 0 || i >= rows) {
        ++out_of_range;
      } else {
        ++seen[static_cast<std::size_t>(i)];
      }
    }
  }
  REQUIRE(out_of_range == 0);
  const auto wrong = std::find_if(seen.begin(), seen.end(), [](int s) { return s != 1; });
  INFO("first sample not assigned exactly once: " << (wrong - seen.begin()));
  REQUIRE(wrong == seen.end());
}

// 10-class labels, 2000 of each, in a scrambled deterministic order.
std::vector<std::int32_t> ten_class_labels(std::int64_t rows) {
  std::vector<std::int32_t> y(static_cast<std::size_t>(rows));
  for (std::int64_t i = 0; i < rows; ++i) y[static_cast<std::size_t>(i)] = (i * 7) % 10;
  return y;
}

}  // namespace

TEST_CASE("Fashion-MNIST loads with the documented shapes and standardisation", "[data][idx]") {
  const TrainTest& tt = fashion();
  REQUIRE(tt.train.rows == 60000);
  REQUIRE(tt.train.dim == 784);
  REQUIRE(tt.test.rows == 10000);
  REQUIRE(tt.test.dim == 784);
  REQUIRE(tt.train.num_classes == 10);
  REQUIRE(tt.train.x.size() == 60000u * 784u);
  REQUIRE(tt.test.x.size() == 10000u * 784u);
  REQUIRE(tt.train.labels.size() == 60000u);
  REQUIRE(tt.test.labels.size() == 10000u);
  REQUIRE(tt.test.labels[0] == 9);
  std::vector<int> count(10, 0);
  auto in_range = [](std::int32_t y) { return y >= 0 && y <= 9; };
  REQUIRE(std::all_of(tt.train.labels.begin(), tt.train.labels.end(), in_range));
  REQUIRE(std::all_of(tt.test.labels.begin(), tt.test.labels.end(), in_range));
  for (const auto y : tt.train.labels) ++count[static_cast<std::size_t>(y)];
  for (const int c : count) REQUIRE(c == 6000);  // Fashion-MNIST is balanced

  double s1 = 0.0, s2 = 0.0;
  for (const float v : tt.train.x) {
    s1 += v;
    s2 += static_cast<double>(v) * v;
  }
  const double n = static_cast<double>(tt.train.x.size());
  const double mean = s1 / n, stddev = std::sqrt(s2 / n - mean * mean);
  INFO("normalised train mean " << mean << " std " << stddev);
  REQUIRE(std::fabs(mean) < 1e-3);
  REQUIRE(std::fabs(stddev - 1.0) < 1e-3);
  // A raw 0 pixel maps to -mean/std of the training pixels (0.2860 / 0.3530 for Fashion-MNIST).
  const float lowest = *std::min_element(tt.test.x.begin(), tt.test.x.end());
  REQUIRE(lowest == Approx(-0.2860 / 0.3530).epsilon(2e-3));
}

TEST_CASE("IDX reader reads tiny gzip and plain files exactly", "[data][idx]") {
  TempDir dir("idx_ok");
  auto img = idx_header(0x803, {2, 2, 3});
  for (unsigned char p : {0, 1, 2, 3, 4, 255, 10, 20, 30, 40, 50, 60}) img.push_back(p);
  write_gz(dir.file("img.gz"), img);
  write_bytes(dir.file("img.raw"), img);
  for (const char* name : {"img.gz", "img.raw"}) {
    const Dataset ds = read_idx_images(dir.file(name));
    REQUIRE(ds.rows == 2);
    REQUIRE(ds.dim == 6);
    REQUIRE(ds.x == std::vector<float>{0, 1, 2, 3, 4, 255, 10, 20, 30, 40, 50, 60});
  }
  auto lab = idx_header(0x801, {3});
  for (unsigned char y : {7, 0, 9}) lab.push_back(y);
  write_gz(dir.file("lab.gz"), lab);
  REQUIRE(read_idx_labels(dir.file("lab.gz")) == std::vector<std::int32_t>{7, 0, 9});
}

TEST_CASE("IDX reader rejects bad magic, truncation and missing files", "[data][idx]") {
  TempDir dir("idx_bad");
  SECTION("bad magic") {
    auto bytes = idx_header(0x801, {1, 2, 2});  // labels magic where images are expected
    bytes.resize(bytes.size() + 4, 0);
    const std::string path = dir.file("bad_magic");
    write_bytes(path, bytes);
    const std::string msg = usage_error_of([&] { read_idx_images(path); });
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find("magic") != std::string::npos);
  }
  SECTION("truncated payload, gzip") {
    auto bytes = idx_header(0x803, {10, 28, 28});
    bytes.resize(bytes.size() + 100, 7);
    const std::string path = dir.file("short.gz");
    write_gz(path, bytes);
    const std::string msg = usage_error_of([&] { read_idx_images(path); });
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find("truncated") != std::string::npos);
  }
  SECTION("truncated header, plain") {
    const std::string path = dir.file("short_header");
    write_bytes(path, {0, 0, 8, 3, 0, 0});
    const std::string msg = usage_error_of([&] { read_idx_images(path); });
    CHECK(msg.find(path) != std::string::npos);
  }
  SECTION("trailing data") {
    auto bytes = idx_header(0x801, {2});
    for (unsigned char y : {1, 2, 3}) bytes.push_back(y);
    const std::string path = dir.file("long_labels");
    write_bytes(path, bytes);
    CHECK(usage_error_of([&] { read_idx_labels(path); }).find(path) != std::string::npos);
  }
  SECTION("missing file and missing directory") {
    const std::string path = dir.file("nope.gz");
    CHECK(usage_error_of([&] { read_idx_labels(path); }).find(path) != std::string::npos);
    const std::string missing = dir.file("no_such_dir");
    const std::string msg = usage_error_of([&] { load_fashion_mnist(missing); });
    CHECK(msg.find(missing) != std::string::npos);
    CHECK(msg.find("dataset-fashion-mnist") != std::string::npos);
    CHECK(msg.find("data.path") != std::string::npos);
  }
}

TEST_CASE("partition_iid: exact cover, sizes differ by at most one", "[data][partition]") {
  for (const auto& [rows, clients] :
       std::vector<std::pair<std::int64_t, int>>{{1001, 10}, {10, 10}, {1, 1}, {97, 13}}) {
    const Partition p = partition_iid(rows, clients, 5);
    REQUIRE(p.size() == static_cast<std::size_t>(clients));
    require_exact_cover(p, rows);
    std::size_t lo = SIZE_MAX, hi = 0;
    for (const auto& idx : p) {
      lo = std::min(lo, idx.size());
      hi = std::max(hi, idx.size());
    }
    REQUIRE(hi - lo <= 1);
    REQUIRE(lo >= 1);
  }
  REQUIRE(partition_iid(1000, 10, 1) == partition_iid(1000, 10, 1));
  REQUIRE(partition_iid(1000, 10, 1) != partition_iid(1000, 10, 2));
  CHECK_THROWS_AS(partition_iid(5, 6, 1), UsageError);
  CHECK_THROWS_AS(partition_iid(5, 0, 1), UsageError);
}

TEST_CASE("partition_dirichlet: exact cover, no empty client, skew grows as alpha shrinks",
          "[data][partition]") {
  const std::vector<std::int32_t> y = ten_class_labels(20000);
  double previous_skew = -1.0;
  for (const double alpha : {100.0, 1.0, 0.1}) {
    const Partition p = partition_dirichlet(y, 10, 20, alpha, 42);
    REQUIRE(p.size() == 20u);
    require_exact_cover(p, 20000);
    for (const auto& idx : p) REQUIRE(!idx.empty());
    const double skew = label_skew(p, y, 10);
    INFO("alpha " << alpha << " skew " << skew << " previous " << previous_skew);
    REQUIRE(skew > previous_skew);
    previous_skew = skew;
  }
  REQUIRE(previous_skew > 0.5);  // alpha = 0.1 is strongly skewed

  SECTION("tiny alpha and few rows still give every client a sample") {
    const std::vector<std::int32_t> few = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0,
                                           1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
    for (const double alpha : {1e-3, 0.05, 10.0}) {
      const Partition p = partition_dirichlet(few, 3, 25, alpha, 3);
      require_exact_cover(p, 25);
      for (const auto& idx : p) REQUIRE(idx.size() == 1u);
    }
    const Partition p = partition_dirichlet(few, 3, 7, 1e-3, 3);
    require_exact_cover(p, 25);
    for (const auto& idx : p) REQUIRE(!idx.empty());
  }
  SECTION("determinism") {
    REQUIRE(partition_dirichlet(y, 10, 20, 0.5, 9) == partition_dirichlet(y, 10, 20, 0.5, 9));
    REQUIRE(partition_dirichlet(y, 10, 20, 0.5, 9) != partition_dirichlet(y, 10, 20, 0.5, 10));
  }
  SECTION("bad parameters") {
    CHECK(usage_error_of([&] { partition_dirichlet(y, 10, 20, 0.0, 1); }).find("alpha") !=
          std::string::npos);
    CHECK_THROWS_AS(partition_dirichlet(y, 10, 20, -1.0, 1), UsageError);
    CHECK_THROWS_AS(partition_dirichlet(y, 10, 20, std::nan(""), 1), UsageError);
    CHECK_THROWS_AS(partition_dirichlet(y, 10, 0, 1.0, 1), UsageError);
    CHECK_THROWS_AS(partition_dirichlet(y, 10, 20001, 1.0, 1), UsageError);
    CHECK_THROWS_AS(partition_dirichlet(y, 9, 20, 1.0, 1), UsageError);  // label 9 out of range
  }
}

TEST_CASE("partition_dirichlet on Fashion-MNIST labels", "[data][partition][idx]") {
  const auto& y = fashion().train.labels;
  const Partition p = partition_dirichlet(y, 10, 100, 0.3, 7);
  require_exact_cover(p, 60000);
  for (const auto& idx : p) REQUIRE(!idx.empty());
  REQUIRE(label_skew(p, y, 10) > label_skew(partition_iid(60000, 100, 7), y, 10));
}

TEST_CASE("partition_shards: exact cover and at most two labels per shard", "[data][partition]") {
  const std::vector<std::int32_t> y = ten_class_labels(20000);
  // 40 shards of 500 samples over 10 classes of 2000: every shard holds exactly one label.
  const Partition p = partition_shards(y, 20, 2, 11);
  REQUIRE(p.size() == 20u);
  require_exact_cover(p, 20000);
  for (const auto& idx : p) {
    REQUIRE(idx.size() == 1000u);
    std::set<std::int32_t> labels;
    for (const auto i : idx) labels.insert(y[static_cast<std::size_t>(i)]);
    REQUIRE(labels.size() <= 2u);
  }
  REQUIRE(label_skew(p, y, 10) >= 0.8);  // each client holds <= 2 of 10 balanced classes

  // Uneven sizes: 1003 samples, 21 shards of 47 or 48; classes of ~100 > 48 samples, so a shard
  // spans at most two labels and a client at most 2 * shards_per_client.
  const std::vector<std::int32_t> y2 = ten_class_labels(1003);
  const Partition q = partition_shards(y2, 7, 3, 11);
  require_exact_cover(q, 1003);
  for (const auto& idx : q) {
    REQUIRE((idx.size() >= 3u * 47u && idx.size() <= 3u * 48u));
    std::set<std::int32_t> labels;
    for (const auto i : idx) labels.insert(y2[static_cast<std::size_t>(i)]);
    REQUIRE(labels.size() <= 6u);
  }
  REQUIRE(partition_shards(y, 20, 2, 11) == p);
  REQUIRE(partition_shards(y, 20, 2, 12) != p);
  CHECK_THROWS_AS(partition_shards(std::vector<std::int32_t>(20, 0), 7, 3, 1), UsageError);
  CHECK_THROWS_AS(partition_shards(y, 20, 0, 1), UsageError);
}

TEST_CASE("place_byzantine: honest parts in id order, iid shares of all rows for the Byzantine",
          "[data][partition]") {
  // 6 clients, Byzantine 1 and 4: the 4 honest parts go to clients 0, 2, 3, 5 in that order.
  const Partition honest = {{0, 1}, {2, 3, 4}, {5}, {6, 7, 8, 9}};
  const std::vector<int> byz = {1, 4};
  const Partition none = place_byzantine(honest, byz, 6, "none", 10, 3);
  REQUIRE(none == Partition{{0, 1}, {}, {2, 3, 4}, {5}, {}, {6, 7, 8, 9}});

  // iid: one permutation of the 10 rows from Rng(seed, 1, kGlobalClient, kPartition), cut into
  // h = 4 parts at floor(k * 10 / 4) = 0, 2, 5, 7, 10; Byzantine j holds part j.
  const Partition iid = place_byzantine(honest, byz, 6, "iid", 10, 3);
  std::vector<std::int64_t> order(10);
  std::iota(order.begin(), order.end(), std::int64_t{0});
  cohort::Rng rng(3, 1, cohort::kGlobalClient, cohort::Purpose::kPartition);
  rng.shuffle(std::span<std::int64_t>(order));
  std::vector<std::int64_t> b0(order.begin(), order.begin() + 2), b1(order.begin() + 2, order.begin() + 5);
  std::sort(b0.begin(), b0.end());
  std::sort(b1.begin(), b1.end());
  REQUIRE(iid == Partition{{0, 1}, b0, {2, 3, 4}, {5}, b1, {6, 7, 8, 9}});
  REQUIRE(place_byzantine(honest, byz, 6, "iid", 10, 4) != iid);  // the seed draws the shares

  // More Byzantine clients than honest ones: shares repeat from the first (j mod h).
  const Partition wrap = place_byzantine({{0, 1, 2}, {3, 4, 5}}, {0, 2, 3, 4}, 6, "iid", 6, 9);
  REQUIRE(wrap[1] == Partition::value_type{0, 1, 2});
  REQUIRE(wrap[5] == Partition::value_type{3, 4, 5});
  REQUIRE(wrap[0].size() == 3u);
  REQUIRE(wrap[4] == wrap[2]);  // j = 3 takes part 1, as j = 1 does
  REQUIRE(wrap[3] == wrap[0]);  // j = 2 takes part 0
  std::vector<std::int64_t> both = wrap[0];
  both.insert(both.end(), wrap[2].begin(), wrap[2].end());
  std::sort(both.begin(), both.end());
  REQUIRE(both == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5});  // parts 0 and 1 cover the rows
}

TEST_CASE("label_skew has known values", "[data][partition]") {
  const std::vector<std::int32_t> y = {0, 1, 0, 1};
  REQUIRE(label_skew({{0, 1}, {2, 3}}, y, 2) == 0.0);
  REQUIRE(label_skew({{0, 2}, {1, 3}}, y, 2) == 0.5);
  REQUIRE(label_skew({{0}, {1, 2, 3}}, y, 2) == Approx((0.5 + 1.0 / 6.0) / 2.0));
}

TEST_CASE("LIBSVM write then read gives the same values bit for bit", "[data][libsvm]") {
  TempDir dir("libsvm_rt");
  Dataset ds;
  ds.rows = 6;
  ds.dim = 4;
  ds.num_classes = 3;
  cohort::Rng rng(3, 0, cohort::kGlobalClient, cohort::Purpose::kTest);
  for (int i = 0; i < 24; ++i) ds.x.push_back(static_cast<float>(rng.normal() * 1e3));
  ds.x[0] = 1.0f / 3.0f;
  ds.x[1] = 1e-30f;
  ds.x[2] = -7.5e12f;
  ds.x[3] = 0.0f;
  ds.x[4] = std::nextafter(1.0f, 2.0f);
  ds.labels = {0, 2, 1, 1, 0, 2};
  const std::string path = dir.file("rt.svm");
  write_libsvm(path, ds);
  const Dataset back = read_libsvm(path, 0, false);
  REQUIRE(back.rows == 6);
  REQUIRE(back.dim == 4);
  REQUIRE(back.num_classes == 3);
  REQUIRE(back.labels == ds.labels);
  REQUIRE(back.x.size() == ds.x.size());
  for (std::size_t i = 0; i < ds.x.size(); ++i) {
    INFO("element " << i);
    REQUIRE(std::memcmp(&back.x[i], &ds.x[i], sizeof(float)) == 0);
  }

  Dataset reg = ds;
  reg.num_classes = 0;
  reg.labels.clear();
  reg.targets = {0.1f, -2.5f, 1e7f, 3.0f, -1e-7f, 0.0f};
  write_libsvm(path, reg);
  const Dataset reg_back = read_libsvm(path, 0, true);
  REQUIRE(reg_back.is_regression());
  REQUIRE(reg_back.targets == reg.targets);
  REQUIRE(reg_back.x == reg.x);
}

TEST_CASE("LIBSVM parses sparse gaps, comments, dense lines and remaps labels", "[data][libsvm]") {
  TempDir dir("libsvm_parse");
  const std::string path = dir.file("a.svm");
  write_text(path,
             "# header comment\n"
             "+1 2:0.5 5:-3\n"
             "\n"
             "-1 1:1   # trailing comment\r\n"
             "+1 3:2e-1\n");
  Dataset ds = read_libsvm(path, 0, false);
  REQUIRE(ds.rows == 3);
  REQUIRE(ds.dim == 5);
  REQUIRE(ds.num_classes == 2);
  REQUIRE(ds.labels == std::vector<std::int32_t>{1, 0, 1});
  REQUIRE(ds.x == std::vector<float>{0, 0.5f, 0, 0, -3, 1, 0, 0, 0, 0, 0, 0, 0.2f, 0, 0});

  ds = read_libsvm(path, 7, false);
  REQUIRE(ds.dim == 7);
  REQUIRE(ds.x[4] == -3.0f);
  REQUIRE(ds.x[7] == 1.0f);

  write_text(path, "9 1:1\n2 1:2\n5 1:3\n2 1:4\n");
  ds = read_libsvm(path, 0, false);
  REQUIRE(ds.num_classes == 3);
  REQUIRE(ds.labels == std::vector<std::int32_t>{2, 0, 1, 0});

  write_text(path, "3 0.5 1.5 2.5\n4 1 2 3\n");
  ds = read_libsvm(path, 0, false);
  REQUIRE(ds.dim == 3);
  REQUIRE(ds.x == std::vector<float>{0.5f, 1.5f, 2.5f, 1, 2, 3});

  write_text(path, "0.5 1:1\n-1.25 2:1\n3 1:2\n");
  ds = read_libsvm(path, 0, true);
  REQUIRE(ds.num_classes == 0);
  REQUIRE(ds.labels.empty());
  REQUIRE(ds.targets == std::vector<float>{0.5f, -1.25f, 3.0f});
}

TEST_CASE("LIBSVM reports malformed lines as FILE:LINE", "[data][libsvm]") {
  TempDir dir("libsvm_bad");
  const std::string path = dir.file("bad.svm");
  const std::string where = path + ":3";
  for (const std::string bad : {"1 3:abc", "1 0:1.0", "1 3:1 2:1", "1 3:1 3:2", "x 1:1", "1 a:1",
                                "1 -2:1", "1 9:1", "1 2:1e999", "1 2:", "1 1:1 2"}) {
    write_text(path, "1 1:1 2:2\n# comment\n" + bad + "\n1 1:3\n");
    const std::string msg = usage_error_of([&] { read_libsvm(path, 5, false); });
    INFO("line '" << bad << "' -> " << msg);
    REQUIRE(msg.find(where) != std::string::npos);
  }
  CHECK(usage_error_of([&] {
          read_libsvm(dir.file("missing.svm"), 0, false);
        }).find(dir.file("missing.svm")) != std::string::npos);
  write_text(path, "# nothing\n\n");
  CHECK_THROWS_AS(read_libsvm(path, 0, false), UsageError);
}

TEST_CASE("split_train_test keeps every row once, in order", "[data][split]") {
  Dataset all;
  all.rows = 101;
  all.dim = 2;
  all.num_classes = 3;
  for (int i = 0; i < 101; ++i) {
    all.x.push_back(static_cast<float>(i));
    all.x.push_back(static_cast<float>(-i));
    all.labels.push_back(i % 3);
  }
  const TrainTest tt = split_train_test(all, 0.2, 8);
  REQUIRE(tt.test.rows == 20);
  REQUIRE(tt.train.rows == 81);
  REQUIRE(tt.train.num_classes == 3);
  std::vector<int> seen(101, 0);
  for (const Dataset* d : {&tt.train, &tt.test}) {
    REQUIRE(d->x.size() == static_cast<std::size_t>(2 * d->rows));
    REQUIRE(d->labels.size() == static_cast<std::size_t>(d->rows));
    for (std::int64_t r = 0; r < d->rows; ++r) {
      const int id = static_cast<int>(d->row(r)[0]);
      REQUIRE(d->row(r)[1] == static_cast<float>(-id));
      REQUIRE(d->labels[static_cast<std::size_t>(r)] == id % 3);
      if (r > 0) REQUIRE(d->row(r - 1)[0] < d->row(r)[0]);
      ++seen[static_cast<std::size_t>(id)];
    }
  }
  for (const int s : seen) REQUIRE(s == 1);
  REQUIRE(split_train_test(all, 0.2, 8).test.x == tt.test.x);
  REQUIRE(split_train_test(all, 0.2, 9).test.x != tt.test.x);
  REQUIRE(split_train_test(all, 0.0, 8).train.rows == 101);
  CHECK_THROWS_AS(split_train_test(all, 1.0, 8), UsageError);
  CHECK_THROWS_AS(split_train_test(all, -0.1, 8), UsageError);
}

TEST_CASE("synthetic_linear: shapes, exact linear targets, natural partition",
          "[data][synthetic]") {
  const SyntheticResult r = synthetic_linear(5, 40, 3, 0.1, 0.2, 17);
  REQUIRE(r.data.train.rows == 200);
  REQUIRE(r.data.test.rows == 50);  // 40 * 0.2 / 0.8 = 10 per client
  REQUIRE(r.data.train.dim == 3);
  REQUIRE(r.data.train.is_regression());
  REQUIRE(r.data.train.targets.size() == 200u);
  REQUIRE(r.data.test.x.size() == 150u);
  REQUIRE(r.partition.size() == 5u);
  require_exact_cover(r.partition, 200);
  for (int k = 0; k < 5; ++k) {
    REQUIRE(r.partition[static_cast<std::size_t>(k)].front() == 40 * k);
    REQUIRE(r.partition[static_cast<std::size_t>(k)].size() == 40u);
  }

  // Noise 0, dim 1: t / x is the same w* for every row, train and test.
  const SyntheticResult exact = synthetic_linear(3, 50, 1, 0.0, 0.25, 4);
  const double w = exact.data.train.targets[0] / exact.data.train.x[0];
  for (const Dataset* d : {&exact.data.train, &exact.data.test}) {
    for (std::int64_t i = 0; i < d->rows; ++i) {
      const double xi = d->x[static_cast<std::size_t>(i)];
      REQUIRE(d->targets[static_cast<std::size_t>(i)] == Approx(w * xi).margin(1e-6));
    }
  }

  const SyntheticResult again = synthetic_linear(5, 40, 3, 0.1, 0.2, 17);
  REQUIRE(again.data.train.x == r.data.train.x);
  REQUIRE(again.data.train.targets == r.data.train.targets);
  REQUIRE(synthetic_linear(5, 40, 3, 0.1, 0.2, 18).data.train.x != r.data.train.x);
  // Client 0's rows do not depend on the number of clients.
  const SyntheticResult two = synthetic_linear(2, 40, 3, 0.1, 0.2, 17);
  REQUIRE(
      std::equal(two.data.train.x.begin(), two.data.train.x.begin() + 120, r.data.train.x.begin()));
  CHECK_THROWS_AS(synthetic_linear(0, 40, 3, 0.1, 0.2, 17), UsageError);
  CHECK_THROWS_AS(synthetic_linear(2, 40, 3, -1.0, 0.2, 17), UsageError);
}

TEST_CASE("synthetic_fedprox: sizes, labels, determinism, heterogeneity", "[data][synthetic]") {
  const SyntheticResult r = synthetic_fedprox(30, 1.0, 1.0, 60, 10, 50, 0.0, 23);
  REQUIRE(r.partition.size() == 30u);
  REQUIRE(r.data.test.rows == 0);
  REQUIRE(r.data.train.dim == 60);
  REQUIRE(r.data.train.num_classes == 10);
  require_exact_cover(r.partition, r.data.train.rows);
  std::int64_t next = 0;
  for (const auto& idx : r.partition) {
    REQUIRE(idx.size() >= 50u);
    REQUIRE(idx.size() <= static_cast<std::size_t>(50 + kFedproxMaxExtra));
    REQUIRE(idx.front() == next);  // contiguous blocks in client order
    next += static_cast<std::int64_t>(idx.size());
  }
  std::set<std::int32_t> used;
  for (const auto y : r.data.train.labels) {
    REQUIRE((y >= 0 && y < 10));
    used.insert(y);
  }
  REQUIRE(used.size() >= 5u);

  // With a test split every client's rows are shared between train and test.
  const SyntheticResult s = synthetic_fedprox(30, 1.0, 1.0, 60, 10, 50, 0.1, 23);
  REQUIRE(s.data.train.rows + s.data.test.rows == r.data.train.rows);
  REQUIRE(s.data.test.rows >= 30 * 5);
  for (std::size_t k = 0; k < 30; ++k) {
    const auto n = static_cast<double>(r.partition[k].size());
    REQUIRE(static_cast<double>(s.partition[k].size()) ==
            std::floor(n - std::floor(0.1 * n + 0.5)));
  }
  for (const auto y : s.data.test.labels) REQUIRE((y >= 0 && y < 10));

  const SyntheticResult again = synthetic_fedprox(30, 1.0, 1.0, 60, 10, 50, 0.1, 23);
  REQUIRE(again.data.train.x == s.data.train.x);
  REQUIRE(again.data.test.labels == s.data.test.labels);
  REQUIRE(synthetic_fedprox(30, 1.0, 1.0, 60, 10, 50, 0.1, 24).data.train.x != s.data.train.x);

  // beta spreads the clients' feature means: mean squared distance between client means grows
  // from about 2 * dim (beta = 0) to about 2 * dim * (1 + beta^2).
  auto spread = [](const SyntheticResult& res) {
    const auto& ds = res.data.train;
    std::vector<std::vector<double>> means;
    for (const auto& idx : res.partition) {
      std::vector<double> m(static_cast<std::size_t>(ds.dim), 0.0);
      for (const auto i : idx) {
        for (std::int64_t j = 0; j < ds.dim; ++j) m[static_cast<std::size_t>(j)] += ds.row(i)[j];
      }
      for (double& v : m) v /= static_cast<double>(idx.size());
      means.push_back(m);
    }
    double total = 0.0;
    int pairs = 0;
    for (std::size_t a = 0; a < means.size(); ++a) {
      for (std::size_t b = a + 1; b < means.size(); ++b, ++pairs) {
        for (std::size_t j = 0; j < means[a].size(); ++j) {
          total += (means[a][j] - means[b][j]) * (means[a][j] - means[b][j]);
        }
      }
    }
    return total / pairs;
  };
  const double homogeneous = spread(synthetic_fedprox(20, 0.0, 0.0, 20, 5, 50, 0.0, 5));
  const double heterogeneous = spread(synthetic_fedprox(20, 0.0, 3.0, 20, 5, 50, 0.0, 5));
  INFO("spread beta=0 " << homogeneous << " beta=3 " << heterogeneous);
  REQUIRE(homogeneous == Approx(40.0).epsilon(0.5));
  REQUIRE(heterogeneous > 3.0 * homogeneous);

  CHECK_THROWS_AS(synthetic_fedprox(30, -1.0, 1.0, 60, 10, 50, 0.1, 23), UsageError);
  CHECK_THROWS_AS(synthetic_fedprox(30, 1.0, 1.0, 60, 1, 50, 0.1, 23), UsageError);
  CHECK_THROWS_AS(synthetic_fedprox(30, 1.0, 1.0, 60, 10, 0, 0.1, 23), UsageError);
}
