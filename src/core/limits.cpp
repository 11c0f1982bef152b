#include "core/limits.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <limits>

#include <fmt/format.h>

#include "core/errors.h"

namespace cohort {

std::int64_t checked_mul(std::int64_t a, std::int64_t b, const std::string& what) {
  std::int64_t out = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &out))
    throw UsageError(fmt::format("{}: {} x {} overflows a 64-bit size", what, a, b));
  return out;
}

std::int64_t checked_add(std::int64_t a, std::int64_t b, const std::string& what) {
  std::int64_t out = 0;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &out))
    throw UsageError(fmt::format("{}: {} + {} overflows a 64-bit size", what, a, b));
  return out;
}

namespace {
std::atomic<std::int64_t> memory_cap{0};  // 0: none
}  // namespace

void cap_usable_memory(std::int64_t bytes) { memory_cap.store(std::max<std::int64_t>(bytes, 0)); }

std::int64_t usable_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  std::int64_t bytes = 0;
  if (pages <= 0 || page <= 0 ||
      __builtin_mul_overflow(static_cast<std::int64_t>(pages), static_cast<std::int64_t>(page),
                             &bytes))
    bytes = std::numeric_limits<std::int64_t>::max();  // unknown: no limit of our own
  rlimit as{};
  if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY &&
      as.rlim_cur < static_cast<rlim_t>(bytes))
    bytes = static_cast<std::int64_t>(as.rlim_cur);
  if (const std::int64_t cap = memory_cap.load(); cap > 0 && cap < bytes) bytes = cap;
  return bytes;
}

std::string human_bytes(double bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (bytes >= 1024 && u < 6) {
    bytes /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} bytes", bytes) : fmt::format("{:.1f} {}", bytes, units[u]);
}

void require_memory(std::int64_t bytes, const std::string& what, std::int64_t limit) {
  if (bytes <= limit) return;
  throw UsageError(fmt::format("{} needs {} ({} bytes), more than the {} ({} bytes) of memory "
                               "this process can use",
                               what, human_bytes(static_cast<double>(bytes)), bytes,
                               human_bytes(static_cast<double>(limit)), limit));
}

}  // namespace cohort
