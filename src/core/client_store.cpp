#include "core/client_store.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

namespace cohort {

ClientStore::Slot ClientStore::declare(std::string name, std::string label, std::int64_t width) {
  if (width <= 0) return kNone;
  for (const auto& s : slots_)
    if (s.name == name) throw std::logic_error("client store: slot " + name + " declared twice");
  slots_.push_back({std::move(name), std::move(label), width});
  data_.emplace_back();
  return static_cast<Slot>(slots_.size() - 1);
}

ClientStore::Slot ClientStore::slot(const std::string& name) const {
  for (std::size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i].name == name) return static_cast<Slot>(i);
  return kNone;
}

void ClientStore::check_client(int c) const {
  if (!owns(c))
    throw std::logic_error(fmt::format("client store: client {} is not in this rank's block "
                                       "[{}, {})", c, begin_, end_));
}

std::span<float> ClientStore::row(Slot s, int c) {
  check_client(c);
  const auto i = static_cast<std::size_t>(s);
  const auto w = static_cast<std::size_t>(slots_.at(i).width);
  std::lock_guard<std::mutex> lock(mu_);
  auto& p = data_[i][c];
  if (!p) p = std::make_unique<float[]>(w);  // value-initialised: zeros
  return {p.get(), w};
}

std::span<const float> ClientStore::find(Slot s, int c) const {
  const auto i = static_cast<std::size_t>(s);
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = data_.at(i).find(c);
  if (it == data_[i].end()) return {};
  return {it->second.get(), static_cast<std::size_t>(slots_[i].width)};
}

void ClientStore::save(StateBundle& b) const {
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    // In id order, so the bytes of a rank's part do not depend on the hash map's order.
    std::vector<int> ids;
    ids.reserve(data_[i].size());
    for (const auto& [c, p] : data_[i]) ids.push_back(c);
    std::sort(ids.begin(), ids.end());
    const auto w = static_cast<std::size_t>(slots_[i].width);
    for (int c : ids) b.put_client(slots_[i].name, c, {data_[i].at(c).get(), w});
  }
}

void ClientStore::load(const StateBundle& b) {
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    data_[i].clear();
    const auto it = b.clients.find(slots_[i].name);
    if (it == b.clients.end()) continue;
    const ClientSlot& in = it->second;
    if (!in.ids.empty() && in.width != slots_[i].width)
      throw std::runtime_error(fmt::format("checkpoint slot {} holds rows of {} values; this run "
                                           "keeps {} per client", slots_[i].name, in.width,
                                           slots_[i].width));
    for (std::size_t k = 0; k < in.ids.size(); ++k) {
      if (in.ids[k] < begin_ || in.ids[k] >= end_) continue;
      const auto src = in.row(k);
      std::copy(src.begin(), src.end(), row(static_cast<Slot>(i), static_cast<int>(in.ids[k])).begin());
    }
  }
}

}  // namespace cohort
