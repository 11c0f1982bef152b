#include "metrics/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "core/build_info.h"
#include "core/errors.h"

namespace cohort::metrics {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[] = "cohort-checkpoint\n";
constexpr std::uint32_t kFormat = 1;
constexpr std::size_t kMagicLen = sizeof kMagic - 1;

std::string file_name(long long round) { return fmt::format("round-{:08d}.ckpt", round); }

// round-NNNNNNNN.ckpt -> NNNNNNNN; -1 for other names.
long long round_of(const std::string& name) {
  if (name.size() != 19 || name.rfind("round-", 0) != 0 || name.substr(14) != ".ckpt") return -1;
  long long r = 0;
  for (char c : name.substr(6, 8)) {
    if (c < '0' || c > '9') return -1;
    r = 10 * r + (c - '0');
  }
  return r;
}

std::uint32_t crc_of(const char* p, std::size_t n) {
  auto c = static_cast<std::uint32_t>(crc32(0L, Z_NULL, 0));
  for (std::size_t at = 0; at < n; at += 1 << 30) {  // zlib takes uInt lengths
    const auto len = static_cast<uInt>(std::min<std::size_t>(1 << 30, n - at));
    c = static_cast<std::uint32_t>(crc32(c, reinterpret_cast<const Bytef*>(p + at), len));
  }
  return c;
}

void put_u64(std::string& out, std::uint64_t v) { out.append(reinterpret_cast<char*>(&v), 8); }
void put_text(std::string& out, const std::string& s) {
  put_u64(out, s.size());
  out += s;
}

void write_all(int fd, const std::string& bytes, const std::string& path) {
  std::size_t at = 0;
  while (at < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + at, bytes.size() - at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(fmt::format("{}: write: {}", path, std::strerror(errno)));
    at += static_cast<std::size_t>(n);
  }
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// Dotted keys of a resolved config -> their values as YAML text.
void flatten(const YAML::Node& n, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (n.IsMap()) {
    for (const auto& kv : n)
      flatten(kv.second, prefix.empty() ? kv.first.as<std::string>()
                                        : prefix + "." + kv.first.as<std::string>(),
              out);
    return;
  }
  YAML::Emitter e;
  e << YAML::Flow << n;
  out[prefix] = e.c_str();
}

// Keys that may differ between a checkpoint and its resume: what the run writes where, how long
// it runs, and clients.threads, which does not change a bit of the results (Note [Client
// threads] in core/worker_pool.h).
bool ignored(const std::string& key) {
  return key == "rounds" || key == "clients.threads" || key.rfind("output.", 0) == 0 || key == "output" ||
         key.rfind("checkpoint.", 0) == 0 || key == "checkpoint";
}

}  // namespace

CheckpointOptions CheckpointOptions::from_config(const Config& cfg) {
  CheckpointOptions o;
  o.every = cfg.get_int("checkpoint.every");
  o.keep = static_cast<int>(cfg.get_int("checkpoint.keep"));
  o.dir = cfg.get_string("checkpoint.path");
  if (o.dir.empty()) o.dir = cfg.get_string("output.path") + ".checkpoints";
  return o;
}

std::string write_checkpoint(const CheckpointOptions& o, const StateBundle& state,
                             long long round, const std::string& config_text) {
  std::error_code ec;
  fs::create_directories(o.dir, ec);
  if (ec)
    throw std::runtime_error(fmt::format("checkpoint.path {}: {}", o.dir, ec.message()));
  std::string bytes(kMagic, kMagicLen);
  bytes.append(reinterpret_cast<const char*>(&kFormat), 4);
  put_text(bytes, fmt::format("version: {}\ngit_revision: {}\nround: {}\n", kVersion,
                              kGitRevision, round));
  put_text(bytes, config_text);
  const std::vector<std::uint8_t> s = state.serialize();
  put_u64(bytes, s.size());
  bytes.append(reinterpret_cast<const char*>(s.data()), s.size());
  const std::uint32_t c = crc_of(bytes.data(), bytes.size());
  bytes.append(reinterpret_cast<const char*>(&c), 4);

  const std::string final_path = (fs::path(o.dir) / file_name(round)).string();
  const std::string tmp = (fs::path(o.dir) / fmt::format(".{}.{}.tmp", file_name(round),
                                                         static_cast<long>(::getpid())))
                              .string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(fmt::format("{}: {}", tmp, std::strerror(errno)));
  try {
    write_all(fd, bytes, tmp);
    if (::fsync(fd) != 0)
      throw std::runtime_error(fmt::format("{}: fsync: {}", tmp, std::strerror(errno)));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), final_path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw std::runtime_error(fmt::format("{}: rename: {}", final_path, std::strerror(errno)));
  }
  fsync_dir(o.dir);
  // Keep the newest `keep` checkpoints.
  std::vector<std::pair<long long, fs::path>> all;
  for (const auto& e : fs::directory_iterator(o.dir, ec))
    if (const long long r = round_of(e.path().filename().string()); r >= 0)
      all.emplace_back(r, e.path());
  std::sort(all.rbegin(), all.rend());
  for (std::size_t i = static_cast<std::size_t>(std::max(1, o.keep)); i < all.size(); ++i)
    fs::remove(all[i].second, ec);
  return final_path;
}

LoadedCheckpoint read_checkpoint_file(const std::string& path, std::string* config_text,
                                      std::string* version) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot be opened");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < kMagicLen + 4 + 4 || bytes.compare(0, kMagicLen, kMagic) != 0)
    throw std::runtime_error("is not a cohort checkpoint");
  std::uint32_t stored = 0;
  std::memcpy(&stored, bytes.data() + bytes.size() - 4, 4);
  const std::size_t body = bytes.size() - 4;
  const std::uint32_t c = crc_of(bytes.data(), body);
  if (c != stored) throw std::runtime_error("is damaged (checksum mismatch: truncated or altered)");
  std::size_t at = kMagicLen;
  const auto take = [&](std::size_t n) {
    if (n > body - at) throw std::runtime_error("is damaged (a length runs past its end)");
    const std::string_view v(bytes.data() + at, n);
    at += n;
    return v;
  };
  const auto u64 = [&] {
    std::uint64_t v;
    std::memcpy(&v, take(8).data(), 8);
    return v;
  };
  std::uint32_t format = 0;
  std::memcpy(&format, take(4).data(), 4);
  if (format != kFormat)
    throw std::runtime_error(fmt::format("has format {}; this cohort reads format {}", format,
                                         kFormat));
  const std::string header(take(u64()));
  *config_text = std::string(take(u64()));
  const std::string_view state = take(u64());
  if (at != body) throw std::runtime_error("is damaged (trailing bytes)");
  LoadedCheckpoint out;
  out.path = path;
  std::istringstream h(header);
  for (std::string line; std::getline(h, line);) {
    if (line.rfind("version: ", 0) == 0) *version = line.substr(9);
    if (line.rfind("round: ", 0) == 0) out.round = std::atoll(line.c_str() + 7);
  }
  if (out.round < 0) throw std::runtime_error("is damaged (negative round)");
  out.state = StateBundle::deserialize(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(state.data()), state.size()));
  return out;
}

std::vector<std::string> config_differences(const std::string& mine, const std::string& theirs) {
  std::map<std::string, std::string> a, b;
  flatten(YAML::Load(mine), "", a);
  flatten(YAML::Load(theirs), "", b);
  std::vector<std::string> out;
  for (const auto& [k, v] : a) {
    if (ignored(k)) continue;
    const auto it = b.find(k);
    if (it == b.end())
      out.push_back(fmt::format("{} ({} here, absent in the checkpoint)", k, v));
    else if (it->second != v)
      out.push_back(fmt::format("{} ({} here, {} in the checkpoint)", k, v, it->second));
  }
  for (const auto& [k, v] : b)
    if (!ignored(k) && a.find(k) == a.end())
      out.push_back(fmt::format("{} (absent here, {} in the checkpoint)", k, v));
  return out;
}

std::optional<LoadedCheckpoint> read_newest_checkpoint(const CheckpointOptions& o,
                                                       const Config& cfg) {
  std::vector<std::pair<long long, std::string>> files;
  std::error_code ec;
  if (fs::is_directory(o.dir, ec))
    for (const auto& e : fs::directory_iterator(o.dir, ec))
      if (const long long r = round_of(e.path().filename().string()); r >= 0 && e.is_regular_file(ec))
        files.emplace_back(r, e.path().string());
  std::sort(files.rbegin(), files.rend());
  std::vector<std::string> warnings;
  for (const auto& entry : files) {
    const std::string& path = entry.second;
    std::string config_text, version;
    LoadedCheckpoint loaded;
    try {
      loaded = read_checkpoint_file(path, &config_text, &version);
    } catch (const std::exception& e) {
      warnings.push_back(fmt::format("checkpoint {} {}; trying the one before it", path, e.what()));
      continue;
    }
    require_usage(version == kVersion,
                  fmt::format("checkpoint {} was written by cohort {}; this is cohort {}, which "
                              "does not resume it (start a new run, or resume with cohort {})",
                              path, version, kVersion, version));
    std::vector<std::string> diff;
    try {
      diff = config_differences(cfg.resolved_text(), config_text);
    } catch (const YAML::Exception&) {
      warnings.push_back(fmt::format("checkpoint {} holds an unreadable config; trying the one "
                                     "before it", path));
      continue;
    }
    if (!diff.empty()) {
      std::string list;
      for (const auto& d : diff) list += "\n  " + d;
      throw UsageError(fmt::format(
          "checkpoint {} is from another config (only rounds, output.* and checkpoint.* may "
          "change on --resume); differing keys:{}",
          path, list));
    }
    loaded.warnings = std::move(warnings);
    return loaded;
  }
  for (const auto& w : warnings) fmt::print(stderr, "cohort: warning: {}\n", w);
  return std::nullopt;
}

}  // namespace cohort::metrics
