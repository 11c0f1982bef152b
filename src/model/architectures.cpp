// The `model.layers:` list and the named architectures (docs/models.md).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <stdexcept>

#include "core/errors.h"
#include "model/layer_model.h"

namespace cohort::model {
namespace {

// The largest channel count, feature count, kernel, stride, padding or group count a layer item
// may give (Note [Input sizes]): products of a few of them stay far inside int64.
constexpr long long kLayerSizeMax = 1 << 20;

struct LayerType {
  const char* name;
  std::vector<std::string> keys;  // besides `type`
};

const std::vector<LayerType>& layer_types() {
  static const std::vector<LayerType> types = {
      {"conv2d", {"in", "out", "kernel", "stride", "padding", "bias"}},
      {"maxpool", {"kernel", "stride"}},
      {"avgpool", {"kernel", "stride"}},
      {"global_avgpool", {}},
      {"relu", {}},
      {"tanh", {}},
      {"dropout", {"p"}},
      {"groupnorm", {"groups", "affine"}},
      {"flatten", {}},
      {"linear", {"in", "out"}},
      {"residual", {"out", "stride", "groups"}},
  };
  return types;
}

// Reads one item's values, each error naming the item.
class Item {
 public:
  Item(const LayerSpec& spec, std::string where) : spec_(spec), where_(std::move(where)) {}

  bool has(const std::string& key) const { return spec_.count(key) > 0; }
  [[noreturn]] void fail(const std::string& msg) const { throw UsageError(where_ + ": " + msg); }

  long long integer(const std::string& key, long long min, std::optional<long long> def) const {
    const auto it = spec_.find(key);
    if (it == spec_.end()) {
      if (!def) fail(fmt::format("needs key '{}'", key));
      return *def;
    }
    const std::string expected = fmt::format("an integer in [{}, {}]", min, kLayerSizeMax);
    long long v = 0;
    try {
      std::size_t used = 0;
      v = std::stoll(it->second, &used, 10);
      if (used != it->second.size()) throw std::invalid_argument(key);
    } catch (const std::exception&) {
      fail(fmt::format("{} = '{}' is not allowed: expected {}", key, it->second, expected));
    }
    if (v < min || v > kLayerSizeMax)
      fail(fmt::format("{} = '{}' is not allowed: expected {}", key, it->second, expected));
    return v;
  }
  double real(const std::string& key) const {
    const auto it = spec_.find(key);
    if (it == spec_.end()) fail(fmt::format("needs key '{}'", key));
    try {
      std::size_t used = 0;
      const double v = std::stod(it->second, &used);
      if (used == it->second.size() && v >= 0.0 && v < 1.0) return v;
    } catch (const std::exception&) {
    }
    fail(fmt::format("{} = '{}' is not allowed: expected a number in [0, 1)", key, it->second));
  }
  bool boolean(const std::string& key, bool def) const {
    const auto it = spec_.find(key);
    if (it == spec_.end()) return def;
    if (it->second == "true") return true;
    if (it->second == "false") return false;
    fail(fmt::format("{} = '{}' is not allowed: expected true or false", key, it->second));
  }

 private:
  const LayerSpec& spec_;
  std::string where_;
};

std::unique_ptr<Layer> build_layer(const Shape& in, const LayerSpec& spec, std::size_t index,
                                   const std::string& list) {
  const std::string item = fmt::format("{}[{}]", list, index);
  const auto type_it = spec.find("type");
  const auto& types = layer_types();
  std::string known;
  for (const auto& lt : types) known += (known.empty() ? "" : ", ") + std::string(lt.name);
  if (type_it == spec.end()) throw UsageError(item + ": needs key 'type' (one of " + known + ")");
  const std::string type = type_it->second;
  const auto t = std::find_if(types.begin(), types.end(),
                              [&](const LayerType& lt) { return type == lt.name; });
  // Not offered on purpose (docs/models.md): say so rather than suggest a near name.
  if (type == "batchnorm" || type == "batch_norm" || type == "bn")
    throw UsageError(item +
                     ": batch normalisation is not offered: its running statistics are "
                     "ill-defined across non-IID clients; use {type: groupnorm, groups: G} "
                     "(docs/models.md)");
  if (t == types.end()) {
    std::vector<std::string> names;
    for (const auto& lt : types) names.emplace_back(lt.name);
    const std::string near = nearest(type, names);
    throw UsageError(fmt::format("{}: unknown type '{}' (known: {}){}", item, type, known,
                                 near.empty() ? "" : fmt::format("; did you mean '{}'?", near)));
  }
  const std::string where = fmt::format("{} ({})", item, type);
  for (const auto& [key, value] : spec) {
    if (key == "type" || std::find(t->keys.begin(), t->keys.end(), key) != t->keys.end()) continue;
    std::string allowed = "type";
    for (const auto& k : t->keys) allowed += ", " + k;
    throw UsageError(fmt::format("{}: key '{}' is not an option of {} (its keys: {})", where, key,
                                 type, allowed));
  }
  const Item it(spec, where);
  const auto input_channels = [&](const std::string& what, std::int64_t have) {
    if (!it.has("in")) return;
    const long long want = it.integer("in", 1, std::nullopt);
    if (want != have)
      it.fail(fmt::format("in = {} but its input {} has {} {}", want, shape_text(in), have, what));
  };
  try {
    if (type == "conv2d") {
      input_channels("channels", in.channels);
      return make_conv2d(in, it.integer("out", 1, {}), it.integer("kernel", 1, {}),
                         it.integer("stride", 1, 1), it.integer("padding", 0, 0),
                         it.boolean("bias", true));
    }
    if (type == "maxpool" || type == "avgpool") {
      const long long k = it.integer("kernel", 1, {});
      return make_pool(in, type == "maxpool" ? PoolKind::kMax : PoolKind::kAverage, k,
                       it.integer("stride", 1, k));
    }
    if (type == "global_avgpool") return make_global_avgpool(in);
    if (type == "relu") return make_activation(in, Elementwise::kRelu);
    if (type == "tanh") return make_activation(in, Elementwise::kTanh);
    if (type == "dropout") return make_dropout(in, it.real("p"));
    if (type == "groupnorm")
      return make_group_norm(in, it.integer("groups", 1, {}), it.boolean("affine", true));
    if (type == "flatten") return make_flatten(in);
    if (type == "linear") {
      input_channels("values", in.size());
      return make_linear_layer(in, it.integer("out", 1, {}));
    }
    return make_residual(in, it.integer("out", 1, {}), it.integer("stride", 1, 1),
                         it.integer("groups", 1, 2));
  } catch (const UsageError& e) {
    const std::string msg = e.what();
    if (msg.starts_with(item)) throw;
    throw UsageError(where + ": " + msg);
  }
}

// A model from a fixed list, whose errors say which architecture did not fit the data.
std::unique_ptr<LayerModel> named(const std::string& name, Shape in, int classes,
                                  const std::vector<LayerSpec>& specs) {
  try {
    return std::make_unique<LayerModel>(name, in, classes, build_stack(in, specs, "layer"));
  } catch (const UsageError& e) {
    throw UsageError(fmt::format("model.name = {} does not fit the data's {} samples: {}", name,
                                 shape_text(in), e.what()));
  }
}

std::string str(long long v) { return std::to_string(v); }

ModelRegistration named_registration(
    std::string name, std::string help, std::vector<Option> options,
    std::function<std::unique_ptr<LayerModel>(const Config&, Shape, int)> make) {
  const std::string n = name;
  return {std::move(name), std::move(help), std::move(options),
          [n, make](const Config& cfg, const data::Dataset& train) -> std::unique_ptr<Model> {
            require_class_labels(n, train);
            return make(cfg, train.shape(), train.num_classes);
          }};
}

}  // namespace

// "type", then every type's keys in order of first appearance.
const std::vector<std::string>& layer_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k = {"type"};
    for (const auto& t : layer_types())
      for (const auto& key : t.keys)
        if (std::find(k.begin(), k.end(), key) == k.end()) k.push_back(key);
    return k;
  }();
  return keys;
}

Stack build_stack(Shape in, const std::vector<LayerSpec>& specs, const std::string& list) {
  Stack s;
  Shape shape = in;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    s.push(build_layer(shape, specs[i], i, list));
    shape = s.out_shape(in);
  }
  return s;
}

// conv 1→32 3×3, relu, conv 32→64 3×3, relu, maxpool 2, dropout 0.25, flatten, linear →128,
// relu, dropout 0.5, linear →classes (the Keras/PyTorch MNIST example network).
std::unique_ptr<LayerModel> make_cnn_mnist(Shape in, int classes) {
  return named("cnn_mnist", in, classes,
               {{{"type", "conv2d"}, {"out", "32"}, {"kernel", "3"}},
                {{"type", "relu"}},
                {{"type", "conv2d"}, {"out", "64"}, {"kernel", "3"}},
                {{"type", "relu"}},
                {{"type", "maxpool"}, {"kernel", "2"}},
                {{"type", "dropout"}, {"p", "0.25"}},
                {{"type", "flatten"}},
                {{"type", "linear"}, {"out", "128"}},
                {{"type", "relu"}},
                {{"type", "dropout"}, {"p", "0.5"}},
                {{"type", "linear"}, {"out", str(classes)}}});
}

// LeNet-5 with ReLU and max pooling: conv 6 5×5 pad 2, relu, maxpool 2, conv 16 5×5, relu,
// maxpool 2, linear 120, relu, linear 84, relu, linear →classes.
std::unique_ptr<LayerModel> make_lenet5(Shape in, int classes) {
  return named("lenet5", in, classes,
               {{{"type", "conv2d"}, {"out", "6"}, {"kernel", "5"}, {"padding", "2"}},
                {{"type", "relu"}},
                {{"type", "maxpool"}, {"kernel", "2"}},
                {{"type", "conv2d"}, {"out", "16"}, {"kernel", "5"}},
                {{"type", "relu"}},
                {{"type", "maxpool"}, {"kernel", "2"}},
                {{"type", "flatten"}},
                {{"type", "linear"}, {"out", "120"}},
                {{"type", "relu"}},
                {{"type", "linear"}, {"out", "84"}},
                {{"type", "relu"}},
                {{"type", "linear"}, {"out", str(classes)}}});
}

// He et al. (2016) §4.2: conv 3×3 16, GN, relu; three stages of n basic blocks with 16, 32 and
// 64 channels, the second and third starting with stride 2 (projection shortcut, 1×1 conv + GN);
// global average pooling; linear →classes.
std::unique_ptr<LayerModel> make_resnet(Shape in, int classes, int blocks_per_stage, int groups) {
  const std::string g = str(groups);
  std::vector<LayerSpec> specs = {
      {{"type", "conv2d"}, {"out", "16"}, {"kernel", "3"}, {"padding", "1"}, {"bias", "false"}},
      {{"type", "groupnorm"}, {"groups", g}},
      {{"type", "relu"}}};
  for (const int channels : {16, 32, 64})
    for (int b = 0; b < blocks_per_stage; ++b)
      specs.push_back({{"type", "residual"},
                       {"out", str(channels)},
                       {"stride", b == 0 && channels > 16 ? "2" : "1"},
                       {"groups", g}});
  specs.push_back({{"type", "global_avgpool"}});
  specs.push_back({{"type", "linear"}, {"out", str(classes)}});
  return named("resnet" + str(6 * blocks_per_stage + 2), in, classes, specs);
}

ModelRegistration cnn_mnist_registration() {
  return named_registration(
      "cnn_mnist", "2 conv layers (32, 64), max pooling, dropout, 128-unit dense layer", {},
      [](const Config&, Shape in, int classes) { return make_cnn_mnist(in, classes); });
}

ModelRegistration lenet5_registration() {
  return named_registration(
      "lenet5", "LeNet-5 with ReLU and max pooling (conv 6, conv 16, dense 120, 84)", {},
      [](const Config&, Shape in, int classes) { return make_lenet5(in, classes); });
}

static Option resnet_groups() {
  return opt_int("groups", 2, "GroupNorm groups (must divide 16)", 1, 16);
}

ModelRegistration resnet8_registration() {
  return named_registration(
      "resnet8", "CIFAR-style ResNet-8 (1 basic block per stage) with GroupNorm", {resnet_groups()},
      [](const Config& cfg, Shape in, int classes) {
        return make_resnet(in, classes, 1, static_cast<int>(cfg.get_int("model.groups")));
      });
}

ModelRegistration resnet20_registration() {
  return named_registration(
      "resnet20", "CIFAR-style ResNet-20 (3 basic blocks per stage) with GroupNorm",
      {resnet_groups()}, [](const Config& cfg, Shape in, int classes) {
        return make_resnet(in, classes, 3, static_cast<int>(cfg.get_int("model.groups")));
      });
}

ModelRegistration layers_registration() {
  return {"layers",
          "a stack of layers listed in model.layers (docs/models.md)",
          {opt_map_list("layers", layer_keys(),
                        "the layers in order, e.g. [{type: conv2d, out: 32, kernel: 3}, {type: "
                        "relu}, {type: flatten}, {type: linear, out: 10}]")},
          [](const Config& cfg, const data::Dataset& train) -> std::unique_ptr<Model> {
            require_class_labels("layers", train);
            const std::vector<LayerSpec> specs = cfg.get_map_list("model.layers");
            require_usage(!specs.empty(),
                          "model.layers is empty: list the layers, e.g. [{type: flatten}, "
                          "{type: linear, out: " +
                              str(train.num_classes) + "}]");
            return std::make_unique<LayerModel>("layers", train.shape(), train.num_classes,
                                                build_stack(train.shape(), specs));
          }};
}

}  // namespace cohort::model
