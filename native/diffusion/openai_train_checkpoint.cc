// OpenaiTrainStep::save / resume: openai/guided-diffusion's TrainLoop checkpoints (save,
// _load_and_sync_parameters, _load_ema_parameters, _load_optimizer_state in train_util.py; the
// model and optimizer halves shared with classifier_train.py's resume_checkpoint) as
// torch.save files their code reads and writes: the model's and each EMA's state dict, and
// AdamW's state_dict in torch.optim's layout.
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <map>
#include <stdexcept>

#include "checkpoints/torch_save.h"
#include "checkpoints/torch_save_writer.h"
#include "checkpoints/zip_archive.h"
#include "diffusion/openai_checkpoint_files.h"
#include "diffusion/openai_train_step.h"
#include "models/jit_builder.h"

namespace gd {

namespace fs = std::filesystem;

namespace {

// Python's str(float) (repr): the shortest digits that read back the same, in positional
// notation for exponents -4..15 (with ".0" on whole numbers), else as 1e-05 / 1.5e+16.
std::string python_float(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  const std::string sci(buf, r.ptr);  // d[.ddd]e±XX
  const auto e = sci.find('e');
  std::string mantissa = sci.substr(0, e);
  const int exp = std::stoi(sci.substr(e + 1));
  const bool negative = mantissa[0] == '-';
  if (negative) mantissa.erase(0, 1);
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits += c;
  }
  std::string out;
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    } else if (static_cast<size_t>(exp) + 1 >= digits.size()) {
      out = digits + std::string(static_cast<size_t>(exp) + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, static_cast<size_t>(exp) + 1) + "." + digits.substr(static_cast<size_t>(exp) + 1);
    }
  } else {
    out = digits.substr(0, 1) + (digits.size() > 1 ? "." + digits.substr(1) : "");
    char ex[16];
    std::snprintf(ex, sizeof ex, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += ex;
  }
  return (negative ? "-" : "") + out;
}

// parse_resume_step_from_filename: the text after the last "model", up to its first ".", as an
// integer; 0 when there is none or it is not one.
int64_t resume_step_of(const std::string& path) {
  const auto at = path.rfind("model");
  if (at == std::string::npos) return 0;
  std::string tail = path.substr(at + 5);
  tail = tail.substr(0, tail.find('.'));
  const auto b = tail.find_first_not_of(" \t\n");
  const auto e = tail.find_last_not_of(" \t\n");
  if (b == std::string::npos) return 0;
  tail = tail.substr(b, e - b + 1);
  if (!tail.empty() && tail[0] == '+') tail.erase(0, 1);
  int64_t v = 0;
  const auto r = std::from_chars(tail.data(), tail.data() + tail.size(), v);
  return (r.ec == std::errc() && r.ptr == tail.data() + tail.size()) ? v : 0;
}

std::string in_dir(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }

// What `file` holds under a path, with their messages' shape: "<file>: <problem>".
[[noreturn]] void bad_file(const std::string& file, const std::string& problem) {
  throw std::runtime_error("resume_checkpoint: " + file + " " + problem);
}

checkpoints::NamedTensors read_state_dict(const std::string& file) {
  try {
    return checkpoints::ReadTorchSave(file);
  } catch (const checkpoints::CheckpointRefused& e) {
    bad_file(file, e.what());
  }
}

const checkpoints::Value* entry(const checkpoints::Value& dict, const std::string& key) {
  for (auto it = dict.entries.rbegin(); it != dict.entries.rend(); ++it) {
    if (it->first->kind == checkpoints::Kind::Str && it->first->s == key) return it->second;
  }
  return nullptr;
}

double number(const checkpoints::Value* v, const std::string& file, const std::string& what) {
  if (v != nullptr && v->kind == checkpoints::Kind::Float) return v->f;
  if (v != nullptr && (v->kind == checkpoints::Kind::Int || v->kind == checkpoints::Kind::Bool)) return static_cast<double>(v->i);
  if (v != nullptr && v->kind == checkpoints::Kind::Tensor && v->tensor.numel() == 1) return v->tensor.item<double>();
  bad_file(file, "is not an AdamW state_dict: its " + what + " is not a number");
}

}  // namespace

std::string openai_step_name(int64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%06lld", static_cast<long long>(n));
  return buf;
}

checkpoints::SaveValue openai_state_dict(const torch::jit::Module& model, const std::vector<at::Tensor>& params) {
  std::vector<std::pair<std::string, at::Tensor>> named;
  size_t i = 0;
  for (const auto& p : model.named_parameters(true)) named.emplace_back(p.name, params.at(i++));
  for (const auto& b : model.named_buffers(true)) named.emplace_back(b.name, b.value);
  return checkpoints::SaveValue::StateDict(named);
}

checkpoints::SaveValue adamw_state_dict(const FusedAdam& adam, const AdamHyper& hyper, const FlatGroups* flat) {
  using V = checkpoints::SaveValue;
  std::vector<std::pair<V, V>> state;
  std::vector<V> indices;
  const size_t n = flat != nullptr ? flat->size() : adam.params().size();
  for (size_t i = 0; i < n; ++i) {
    indices.push_back(V::Int(static_cast<int64_t>(i)));
    FusedAdam::ParamState s;
    if (flat == nullptr) {
      s = adam.state(i);
    } else {
      // All of a group's parameters step together (a master gets a gradient every step).
      const std::vector<size_t>& g = (*flat)[i];
      if (g.empty()) continue;
      std::vector<at::Tensor> m1, m2;
      for (size_t j : g) {
        m1.push_back(adam.state(j).exp_avg.reshape(-1));
        m2.push_back(adam.state(j).exp_avg_sq.reshape(-1));
      }
      const std::vector<int64_t> shape = i == 0 ? std::vector<int64_t>{-1} : std::vector<int64_t>{1, -1};
      s = {adam.state(g.front()).step, at::cat(m1).view(shape), at::cat(m2).view(shape)};
    }
    if (s.step.item<double>() == 0) continue;
    state.emplace_back(V::Int(static_cast<int64_t>(i)),
                       V::Dict({{V::Str("step"), V::Tensor(s.step.detach().clone())},
                                {V::Str("exp_avg"), V::Tensor(s.exp_avg)},
                                {V::Str("exp_avg_sq"), V::Tensor(s.exp_avg_sq)}}));
  }
  const V group = V::Dict({{V::Str("lr"), V::Float(hyper.lr)},
                           {V::Str("betas"), V::Tuple({V::Float(hyper.beta1), V::Float(hyper.beta2)})},
                           {V::Str("eps"), V::Float(hyper.eps)},
                           {V::Str("weight_decay"), V::Float(hyper.weight_decay)},
                           {V::Str("amsgrad"), V::Bool(false)},
                           {V::Str("maximize"), V::Bool(false)},
                           {V::Str("foreach"), V::None()},
                           {V::Str("capturable"), V::Bool(false)},
                           {V::Str("differentiable"), V::Bool(false)},
                           {V::Str("fused"), V::None()},
                           {V::Str("decoupled_weight_decay"), V::Bool(true)},
                           {V::Str("params"), V::List(indices)}});
  return V::Dict({{V::Str("state"), V::Dict(state)}, {V::Str("param_groups"), V::List({group})}});
}

std::vector<std::string> OpenaiTrainStep::save(const std::string& dir, int64_t number) const {
  std::vector<std::string> written;
  auto write = [&](const std::string& name, const checkpoints::SaveValue& value) {
    const std::string path = in_dir(dir, name);
    checkpoints::WriteTorchSave(path, value);
    written.push_back(path);
  };
  write("model" + openai_step_name(number) + ".pt", openai_state_dict(denoiser_.module(), params_));
  for (size_t r = 0; r < ema_.size(); ++r) {
    write("ema_" + python_float(options_.ema_rate[r]) + "_" + openai_step_name(number) + ".pt", openai_state_dict(denoiser_.module(), ema_[r]));
  }
  write("opt" + openai_step_name(number) + ".pt", adamw_state_dict(adam_, hyper_, mp_.flat_groups()));
  return written;
}

int64_t parse_resume_step(const std::string& path) { return resume_step_of(path); }

void load_model_file(torch::jit::Module model, const std::string& file) {
  try {
    load_named_tensors(model, read_state_dict(file), /*strict=*/true);
  } catch (const c10::Error& e) {
    bad_file(file, std::string("does not fit the model: ") + e.what_without_backtrace());
  }
}

AdamHyper load_adamw_state(const std::string& file, FusedAdam& adam, const std::vector<std::string>& names, const FlatGroups* flat) {
  // Read whole before anything is changed: a bad file leaves the fresh state as it was.
  struct Loaded {
    at::Tensor step, exp_avg, exp_avg_sq;
  };
  std::map<int64_t, Loaded> loaded;
  AdamHyper h;
  // The file's entries: our parameters, or (flat) their flat masters, each a group of ours.
  const size_t entries = flat != nullptr ? flat->size() : adam.params().size();
  auto numel_of = [&](size_t i) {
    if (flat == nullptr) return adam.params()[i].numel();
    int64_t n = 0;
    for (size_t j : (*flat)[i]) n += adam.params()[j].numel();
    return n;
  };
  try {
    checkpoints::VisitTorchSave(file, [&](const checkpoints::Value& top) {
      const checkpoints::Value* state = top.kind == checkpoints::Kind::Dict ? entry(top, "state") : nullptr;
      const checkpoints::Value* groups = top.kind == checkpoints::Kind::Dict ? entry(top, "param_groups") : nullptr;
      if (state == nullptr || state->kind != checkpoints::Kind::Dict || groups == nullptr || groups->kind != checkpoints::Kind::List) {
        bad_file(file, "is not an optimizer's state_dict (a dict of 'state' and 'param_groups')");
      }
      if (groups->items.size() != 1 || groups->items[0]->kind != checkpoints::Kind::Dict) bad_file(file, "does not hold one param_group, as their AdamW has");
      const checkpoints::Value& g = *groups->items[0];
      const checkpoints::Value* params = entry(g, "params");
      if (params == nullptr || params->kind != checkpoints::Kind::List || params->items.size() != entries) {
        bad_file(file, "has a param_group of " + std::to_string(params == nullptr ? 0 : params->items.size()) +
                          " parameters; the model has " + std::to_string(entries) +
                          (flat != nullptr ? " (use_fp16: their two flat master tensors)" : ""));
      }
      const checkpoints::Value* betas = entry(g, "betas");
      if (betas == nullptr || betas->kind != checkpoints::Kind::Tuple || betas->items.size() != 2) bad_file(file, "has no betas pair");
      h = {number(entry(g, "lr"), file, "lr"), number(betas->items[0], file, "beta1"), number(betas->items[1], file, "beta2"),
           number(entry(g, "eps"), file, "eps"), number(entry(g, "weight_decay"), file, "weight_decay")};
      for (const auto& [k, v] : state->entries) {
        if (k->kind != checkpoints::Kind::Int || k->i < 0 || k->i >= static_cast<int64_t>(entries) || v->kind != checkpoints::Kind::Dict) {
          bad_file(file, "has a state entry that is not a parameter index of the model");
        }
        const checkpoints::Value* m1 = entry(*v, "exp_avg");
        const checkpoints::Value* m2 = entry(*v, "exp_avg_sq");
        const auto i = static_cast<size_t>(k->i);
        const std::string which = flat != nullptr ? "flat master " + std::to_string(k->i)
                                                  : "parameter " + std::to_string(k->i) + " (" + names[i] + ")";
        for (const checkpoints::Value* m : {m1, m2}) {
          const bool fits = m != nullptr && m->kind == checkpoints::Kind::Tensor &&
                            (flat != nullptr ? m->tensor.numel() == numel_of(i) : m->tensor.sizes() == adam.params()[i].sizes());
          if (!fits) {
            bad_file(file, "holds no moments of " + which + "'s shape: it was saved from another model");
          }
        }
        loaded[k->i] = {at::full({}, number(entry(*v, "step"), file, "step of " + which), at::kFloat), m1->tensor, m2->tensor};
      }
    });
  } catch (const checkpoints::CheckpointRefused& e) {
    bad_file(file, e.what());
  }
  if (flat != nullptr) {
    // Each flat master's state split into its parameters' (their unflatten order: the group's).
    std::map<int64_t, Loaded> split;
    for (const auto& [gi, l] : loaded) {
      int64_t offset = 0;
      for (size_t j : (*flat)[static_cast<size_t>(gi)]) {
        const at::Tensor& p = adam.params()[j];
        auto part = [&](const at::Tensor& t) { return t.reshape(-1).narrow(0, offset, p.numel()).view(p.sizes()); };
        split[static_cast<int64_t>(j)] = {l.step, part(l.exp_avg), part(l.exp_avg_sq)};
        offset += p.numel();
      }
    }
    loaded = std::move(split);
  }
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < adam.params().size(); ++i) {
    const FusedAdam::ParamState s = adam.state(i);
    auto it = loaded.find(static_cast<int64_t>(i));
    if (it == loaded.end()) {
      s.step.zero_();
      s.exp_avg.zero_();
      s.exp_avg_sq.zero_();
    } else {
      s.step.copy_(it->second.step);
      s.exp_avg.copy_(it->second.exp_avg);
      s.exp_avg_sq.copy_(it->second.exp_avg_sq);
    }
  }
  return h;
}

void load_named_params(const std::string& file, const std::vector<std::string>& names, const std::vector<at::Tensor>& targets) {
  std::map<std::string, at::Tensor> sd;
  for (auto& [name, t] : read_state_dict(file)) sd[name] = t;
  for (size_t i = 0; i < names.size(); ++i) {
    auto it = sd.find(names[i]);
    if (it == sd.end()) bad_file(file, "has no " + names[i] + ", a parameter of the model");
    if (it->second.sizes() != targets[i].sizes()) bad_file(file, "holds " + names[i] + " in another shape than the model's");
  }
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < names.size(); ++i) targets[i].detach().copy_(sd[names[i]]);
}

void OpenaiTrainStep::resume(const std::string& model_path) {
  load_model_file(denoiser_.module(), model_path);
  const auto names = param_names();
  // use_fp16: the masters take the file's float32 weights, not the model's float16 roundings.
  if (mp_.use_fp16()) load_named_params(model_path, names, params_);
  resume_step_ = parse_resume_step(model_path);
  const std::string dir = fs::path(model_path).parent_path().string();
  at::NoGradGuard no_grad;
  for (size_t r = 0; r < ema_.size(); ++r) {
    const std::string file = in_dir(dir, "ema_" + python_float(options_.ema_rate[r]) + "_" + openai_step_name(resume_step_) + ".pt");
    if (resume_step_ == 0 || !fs::exists(file)) {
      for (size_t i = 0; i < params_.size(); ++i) ema_[r][i].copy_(params_[i]);
      continue;
    }
    load_named_params(file, names, ema_[r]);
  }
  const std::string opt = in_dir(dir, "opt" + openai_step_name(resume_step_) + ".pt");
  if (resume_step_ == 0 || !fs::exists(opt)) return;
  hyper_ = load_adamw_state(opt, adam_, names, mp_.flat_groups());
}

}  // namespace gd
