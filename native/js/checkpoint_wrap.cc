// The JS face of the checkpoint readers (native/checkpoints): jit.load, the file guard and
// format sniffing that every reader starts with, and torch.save state dicts. Messages name the
// function the user called ("jit.load", "loadStateDict") and the file.
#include <torch/script.h>

#include "checkpoints/checkpoint_format.h"
#include "checkpoints/file_check.h"
#include "checkpoints/torch_save.h"
#include "checkpoints/torch_save_writer.h"
#include "checkpoints/torchscript_check.h"
#include "checkpoints/zip_archive.h"
#include "js/common.h"
#include "js/installers.h"
#include "js/module_wrap.h"
#include "js/tensor_wrap.h"

namespace gd::js {

namespace {

namespace ck = gd::checkpoints;

// Throws "<who>: <problem>" unless path is a regular, non-empty file; returns its format.
ck::Format CheckedFormat(Napi::Env env, const std::string& who, const std::string& path, std::string* head = nullptr) {
  std::string problem = ck::FileProblem(path);
  if (!problem.empty()) throw Napi::Error::New(env, who + ": " + problem);
  return ck::SniffFormat(path, head);
}

// checkpointFormat(path, who) -> 'zip' | 'pickle' | 'safetensors' | 'unknown' (then {format, head}).
Napi::Value CheckpointFormat(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Napi::Env env = info.Env();
    const std::string path = ToString(info[0], "path");
    const std::string who = ToString(info[1], "who");
    std::string head;
    ck::Format f = CheckedFormat(env, who, path, &head);
    auto out = Napi::Object::New(env);
    out.Set("format", ck::FormatName(f));
    out.Set("head", head);
    return out;
  })
}

// readTorchSave(path, key, who) -> {name: Tensor} in the file's order.
Napi::Value ReadTorchSave(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Napi::Env env = info.Env();
    const std::string path = ToString(info[0], "path");
    const std::string key = IsMissing(info[1]) ? "" : ToString(info[1], "key");
    const std::string who = ToString(info[2], "who");
    CheckedFormat(env, who, path);
    ck::NamedTensors tensors;
    try {
      tensors = ck::ReadTorchSave(path, key);
    } catch (const ck::CheckpointRefused& e) {
      throw Napi::Error::New(env, who + ": " + path + " " + e.what());
    }
    auto obj = Napi::Object::New(env);
    for (const auto& [name, t] : tensors) obj.Set(name, TensorWrap::Wrap(env, t));
    return obj;
  })
}

// writeTorchSave(path, {name: Tensor}, zip64) -> undefined: the state dict as torch.save writes it.
Napi::Value WriteTorchSave(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Napi::Env env = info.Env();
    const std::string path = ToString(info[0], "path");
    if (!info[1].IsObject()) ThrowType(env, "writeStateDict: expected an object of named tensors; got " + Describe(info[1]));
    Napi::Object o = info[1].As<Napi::Object>();
    Napi::Array names = o.GetPropertyNames();
    std::vector<std::pair<std::string, at::Tensor>> named;
    for (uint32_t i = 0; i < names.Length(); ++i) {
      const std::string name = names.Get(i).As<Napi::String>().Utf8Value();
      named.emplace_back(name, TensorWrap::From(o.Get(name), name.c_str()));
    }
    ck::WriteTorchSave(path, ck::SaveValue::StateDict(named), ToBool(info[2], "zip64"));
    return env.Undefined();
  })
}

// jitLoad(path, device?)
Napi::Value JitLoad(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Napi::Env env = info.Env();
    std::string path = ToString(info[0], "path");
    const ck::Format format = CheckedFormat(env, "jit.load", path);
    const std::string not_ts = "jit.load: " + path + " is not a TorchScript checkpoint: ";
    if (format == ck::Format::Safetensors) {
      throw Napi::Error::New(env, not_ts + "it is a safetensors file (weights, no program): load it into a model with module.loadStateDict(path)");
    }
    if (format == ck::Format::Pickle) {
      throw Napi::Error::New(env, not_ts + "it is a pickle (torch.save's old format): load its weights into a model with module.loadStateDict(path)");
    }
    // LibTorch's readers are not hardened against every malformed archive: what is not a
    // TorchScript zip at all stops here with a clear message.
    std::string problem = ck::TorchScriptArchiveProblem(path);
    if (!problem.empty()) throw Napi::Error::New(env, not_ts + problem);
    std::optional<at::Device> device;
    if (!IsMissing(info[1])) device = ToDevice(env, ToString(info[1], "device"));
    torch::jit::Module m;
    try {
      m = torch::jit::load(path, device);
    } catch (const std::exception& e) {
      // The first non-empty line: some LibTorch messages start with a newline.
      std::string msg = e.what();
      auto begin = msg.find_first_not_of("\n ");
      msg = begin == std::string::npos ? "" : msg.substr(begin);
      throw Napi::Error::New(env, "jit.load: " + path + " is not a readable TorchScript checkpoint (" + msg.substr(0, msg.find('\n')) + ")");
    }
    return ModuleWrap::Wrap(env, m);
  })
}

}  // namespace

void InstallCheckpoints(Napi::Env env, Napi::Object exports) {
  exports.Set("jitLoad", Napi::Function::New(env, JitLoad, "jitLoad"));
  exports.Set("checkpointFormat", Napi::Function::New(env, CheckpointFormat, "checkpointFormat"));
  exports.Set("readTorchSave", Napi::Function::New(env, ReadTorchSave, "readTorchSave"));
  exports.Set("writeTorchSave", Napi::Function::New(env, WriteTorchSave, "writeTorchSave"));
}

}  // namespace gd::js
