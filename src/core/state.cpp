#include "core/state.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace cohort {

void StateBundle::put_client(const std::string& slot, std::int64_t id,
                             std::span<const float> row) {
  ClientSlot& s = clients[slot];
  if (s.ids.empty()) s.width = static_cast<std::int64_t>(row.size());
  if (s.width != static_cast<std::int64_t>(row.size()))
    throw std::logic_error("state slot " + slot + ": rows of different widths");
  s.ids.push_back(id);
  s.values.insert(s.values.end(), row.begin(), row.end());
}

namespace {

template <class Map>
const typename Map::mapped_type& find(const Map& m, const std::string& name) {
  const auto it = m.find(name);
  if (it == m.end()) throw std::runtime_error("checkpoint has no entry '" + name + "'");
  return it->second;
}

class Writer {
 public:
  void u64(std::uint64_t v) { raw(&v, sizeof v); }
  void str(const std::string& s) {
    u64(s.size());
    raw(s.data(), s.size());
  }
  template <class T>
  void vec(const std::vector<T>& v) {
    u64(v.size());
    raw(v.data(), v.size() * sizeof(T));
  }
  void raw(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  }
  std::vector<std::uint8_t> out;
};

class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> b) : b_(b) {}
  std::uint64_t u64() {
    std::uint64_t v;
    raw(&v, sizeof v);
    return v;
  }
  std::string str() {
    const std::uint64_t n = u64();
    check(n);
    std::string s(reinterpret_cast<const char*>(b_.data() + at_), n);
    at_ += n;
    return s;
  }
  template <class T>
  std::vector<T> vec() {
    const std::uint64_t n = u64();
    if (n > (b_.size() - at_) / sizeof(T)) throw std::runtime_error("state bytes: truncated");
    std::vector<T> v(n);
    raw(v.data(), n * sizeof(T));
    return v;
  }
  void raw(void* p, std::size_t n) {
    check(n);
    if (n == 0) return;  // p may be null (an empty vector's data()): memcpy must not see it
    std::memcpy(p, b_.data() + at_, n);
    at_ += n;
  }
  bool done() const { return at_ == b_.size(); }

 private:
  void check(std::uint64_t n) const {
    if (n > b_.size() - at_) throw std::runtime_error("state bytes: truncated");
  }
  std::span<const std::uint8_t> b_;
  std::size_t at_ = 0;
};

}  // namespace

const std::vector<float>& StateBundle::get_f32(const std::string& name) const {
  return find(f32, name);
}
const std::vector<double>& StateBundle::get_f64(const std::string& name) const {
  return find(f64, name);
}
const std::vector<std::int64_t>& StateBundle::get_i64(const std::string& name) const {
  return find(i64, name);
}
bool StateBundle::has(const std::string& name) const {
  return f32.count(name) || f64.count(name) || i64.count(name) || clients.count(name);
}

std::vector<std::uint8_t> StateBundle::serialize() const {
  Writer w;
  w.u64(f32.size());
  for (const auto& [k, v] : f32) w.str(k), w.vec(v);
  w.u64(f64.size());
  for (const auto& [k, v] : f64) w.str(k), w.vec(v);
  w.u64(i64.size());
  for (const auto& [k, v] : i64) w.str(k), w.vec(v);
  w.u64(clients.size());
  for (const auto& [k, s] : clients) {
    w.str(k);
    w.u64(static_cast<std::uint64_t>(s.width));
    w.vec(s.ids);
    w.vec(s.values);
  }
  return std::move(w.out);
}

StateBundle StateBundle::deserialize(std::span<const std::uint8_t> bytes) {
  Reader r(bytes);
  StateBundle b;
  // serialize() writes each name once; a repeated one would silently replace the first.
  const auto unique = [](bool inserted, const std::string& k) {
    if (!inserted) throw std::runtime_error("state bytes: entry '" + k + "' appears twice");
  };
  for (std::uint64_t n = r.u64(); n > 0; --n) {
    auto k = r.str();
    unique(b.f32.emplace(k, r.vec<float>()).second, k);
  }
  for (std::uint64_t n = r.u64(); n > 0; --n) {
    auto k = r.str();
    unique(b.f64.emplace(k, r.vec<double>()).second, k);
  }
  for (std::uint64_t n = r.u64(); n > 0; --n) {
    auto k = r.str();
    unique(b.i64.emplace(k, r.vec<std::int64_t>()).second, k);
  }
  for (std::uint64_t n = r.u64(); n > 0; --n) {
    auto k = r.str();
    ClientSlot s;
    const std::uint64_t width = r.u64();
    s.ids = r.vec<std::int64_t>();
    s.values = r.vec<float>();
    // Compared without forming ids x width, which a hostile width would wrap to the right size.
    if (width > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
        (s.ids.empty() ? !s.values.empty() : width != s.values.size() / s.ids.size() ||
                                                 s.values.size() % s.ids.size() != 0))
      throw std::runtime_error("state bytes: slot " + k + " has the wrong size");
    s.width = static_cast<std::int64_t>(width);
    unique(b.clients.emplace(k, std::move(s)).second, k);
  }
  if (!r.done()) throw std::runtime_error("state bytes: trailing data");
  return b;
}

void StateBundle::merge(StateBundle&& other) {
  for (auto& [k, v] : other.f32) f32[k] = std::move(v);
  for (auto& [k, v] : other.f64) f64[k] = std::move(v);
  for (auto& [k, v] : other.i64) i64[k] = std::move(v);
  for (auto& [k, s] : other.clients) {
    ClientSlot& mine = clients[k];
    if (mine.ids.empty()) mine.width = s.width;
    if (!s.ids.empty() && mine.width != s.width)
      throw std::logic_error("state slot " + k + ": rows of different widths");
    mine.ids.insert(mine.ids.end(), s.ids.begin(), s.ids.end());
    mine.values.insert(mine.values.end(), s.values.begin(), s.values.end());
  }
  // Rows in id order, whatever ranks they came from.
  for (auto& [k, s] : clients) {
    std::vector<std::size_t> order(s.ids.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(), [&](auto a, auto b) { return s.ids[a] < s.ids[b]; });
    ClientSlot sorted;
    sorted.width = s.width;
    for (auto i : order) {
      sorted.ids.push_back(s.ids[i]);
      const auto row = s.row(i);
      sorted.values.insert(sorted.values.end(), row.begin(), row.end());
    }
    s = std::move(sorted);
  }
}

}  // namespace cohort
