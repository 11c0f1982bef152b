#include "robust/chunk_tree.h"

#include <cstring>
#include <map>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>

namespace cohort::robust {

ChunkTree::ChunkTree(std::int64_t first, std::int64_t total_chunks, std::size_t width)
    : total_chunks_(total_chunks), next_(first), width_(width) {
  while ((std::int64_t{1} << root_level_) < total_chunks_) ++root_level_;
}

bool ChunkTree::empty(int level, std::int64_t index) const {
  return (index << level) >= total_chunks_;
}

void ChunkTree::push(const double* partial) {
  if (next_ >= total_chunks_) throw std::logic_error("ChunkTree: more chunks than declared");
  stack_.push_back(Node{0, next_++, std::vector<double>(partial, partial + width_)});
  for (;;) {
    Node& top = stack_.back();
    if (top.level >= root_level_) break;
    if (top.index % 2 == 1) {  // a right child: merge with its left sibling if this rank has it
      if (stack_.size() < 2) break;
      Node& left = stack_[stack_.size() - 2];
      if (left.level != top.level || left.index != top.index - 1) break;
      for (std::size_t k = 0; k < width_; ++k) left.v[k] = left.v[k] + top.v[k];
      left.level += 1;
      left.index /= 2;
      stack_.pop_back();
    } else if (empty(top.level, top.index + 1)) {  // a left child without a right sibling
      top.level += 1;
      top.index /= 2;
    } else {
      break;
    }
  }
}

std::vector<double> ChunkTree::total(const GatherBytes& gather) {
  std::map<std::pair<int, std::int64_t>, std::vector<double>> nodes;
  if (!gather) {
    for (auto& n : stack_) nodes[{n.level, n.index}] = std::move(n.v);
  } else {
    // [level i32][index i64][width doubles] per node.
    const std::size_t rec = sizeof(std::int32_t) + sizeof(std::int64_t) + width_ * sizeof(double);
    std::vector<std::uint8_t> mine(stack_.size() * rec);
    std::uint8_t* p = mine.data();
    for (const auto& n : stack_) {
      const std::int32_t level = n.level;
      std::memcpy(p, &level, sizeof level);
      std::memcpy(p + sizeof level, &n.index, sizeof n.index);
      std::memcpy(p + sizeof level + sizeof n.index, n.v.data(), width_ * sizeof(double));
      p += rec;
    }
    for (const auto& box : gather(mine)) {
      if (box.size() % rec != 0) throw std::logic_error("ChunkTree: malformed gathered nodes");
      for (std::size_t at = 0; at < box.size(); at += rec) {
        std::int32_t level;
        std::int64_t index;
        std::memcpy(&level, box.data() + at, sizeof level);
        std::memcpy(&index, box.data() + at + sizeof level, sizeof index);
        std::vector<double> v(width_);
        std::memcpy(v.data(), box.data() + at + sizeof level + sizeof index,
                    width_ * sizeof(double));
        nodes[{level, index}] = std::move(v);
      }
    }
  }
  stack_.clear();
  if (total_chunks_ == 0) return std::vector<double>(width_, 0.0);
  // Evaluate the root: a node not gathered is the sum of its children.
  std::function<std::vector<double>(int, std::int64_t)> eval = [&](int level, std::int64_t index) {
    auto it = nodes.find({level, index});
    if (it != nodes.end()) return std::move(it->second);
    if (level == 0)
      throw std::logic_error(fmt::format("ChunkTree: chunk {} of {} was not summed by any rank",
                                         index, total_chunks_));
    std::vector<double> left = eval(level - 1, 2 * index);
    if (empty(level - 1, 2 * index + 1)) return left;
    const std::vector<double> right = eval(level - 1, 2 * index + 1);
    for (std::size_t k = 0; k < width_; ++k) left[k] = left[k] + right[k];
    return left;
  };
  return eval(root_level_, 0);
}

}  // namespace cohort::robust
