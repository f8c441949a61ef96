// openai/guided-diffusion's networks for JS: reads the options object that
// lib/openai/models.ts has validated and filled (camelCase keys, every field present)
// into the C++ options and wraps the built module.
#include <string>
#include <vector>

#include "js/common.h"
#include "js/installers.h"
#include "js/module_wrap.h"
#include "models/openai_encoder.h"
#include "models/openai_size.h"
#include "models/openai_unet.h"

namespace gd::js {

namespace {

int64_t IntField(const Napi::Value& o, const char* key) { return ToInt(Option(o, key), key); }
bool BoolField(const Napi::Value& o, const char* key) { return ToBool(Option(o, key), key); }

std::vector<double> NumbersField(const Napi::Value& o, const char* key) {
  Napi::Value v = Option(o, key);
  if (!v.IsArray()) ThrowType(v.Env(), std::string("Expected an array of numbers for ") + key + " but received " + Describe(v));
  auto arr = v.As<Napi::Array>();
  std::vector<double> out;
  for (uint32_t i = 0; i < arr.Length(); i++) out.push_back(ToNumber(arr.Get(i), key));
  return out;
}

void ReadNetOptions(const Napi::Value& o, openai::NetOptions& opts) {
  opts.image_size = IntField(o, "imageSize");
  opts.in_channels = IntField(o, "inChannels");
  opts.model_channels = IntField(o, "modelChannels");
  opts.out_channels = IntField(o, "outChannels");
  opts.num_res_blocks = IntField(o, "numResBlocks");
  for (double r : NumbersField(o, "attentionResolutions")) opts.attention_resolutions.push_back(static_cast<int64_t>(r));
  opts.dropout = ToNumber(Option(o, "dropout"), "dropout");
  opts.channel_mult = NumbersField(o, "channelMult");
  opts.use_fp16 = BoolField(o, "useFp16");
  opts.num_heads = IntField(o, "numHeads");
  opts.num_head_channels = IntField(o, "numHeadChannels");
  opts.num_heads_upsample = IntField(o, "numHeadsUpsample");
  opts.use_scale_shift_norm = BoolField(o, "useScaleShiftNorm");
  opts.resblock_updown = BoolField(o, "resblockUpdown");
  opts.use_new_attention_order = BoolField(o, "useNewAttentionOrder");
  opts.use_checkpoint = BoolField(o, "useCheckpoint");
}

openai::UNetModelOptions ReadUNetOptions(const Napi::Value& o) {
  openai::UNetModelOptions opts;
  ReadNetOptions(o, opts);
  Napi::Value classes = Option(o, "numClasses");
  opts.num_classes = IsMissing(classes) ? 0 : ToInt(classes, "numClasses");
  return opts;
}

openai::EncoderUNetModelOptions ReadEncoderOptions(const Napi::Value& o) {
  openai::EncoderUNetModelOptions opts;
  ReadNetOptions(o, opts);
  opts.pool = ToString(Option(o, "pool"), "pool");
  return opts;
}

Napi::Value CreateUNetModel(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), { return ModuleWrap::Wrap(info.Env(), openai::make_unet_model(ReadUNetOptions(info[0]))); })
}

Napi::Value CreateEncoderUNetModel(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), { return ModuleWrap::Wrap(info.Env(), openai::make_encoder_unet_model(ReadEncoderOptions(info[0]))); })
}

// openaiParameterCount('unet' | 'encoder', options): the parameters the network would hold.
Napi::Value ParameterCount(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const bool unet = ToString(info[0], "kind") == "unet";
    const double n = unet ? openai::unet_parameter_count(ReadUNetOptions(info[1])) : openai::encoder_parameter_count(ReadEncoderOptions(info[1]));
    return Napi::Number::New(info.Env(), n);
  })
}

}  // namespace

void InstallOpenaiModels(Napi::Env env, Napi::Object exports) {
  exports.Set("createOpenaiUNetModel", Napi::Function::New(env, CreateUNetModel, "createOpenaiUNetModel"));
  exports.Set("createOpenaiEncoderUNetModel", Napi::Function::New(env, CreateEncoderUNetModel, "createOpenaiEncoderUNetModel"));
  exports.Set("openaiParameterCount", Napi::Function::New(env, ParameterCount, "openaiParameterCount"));
}

}  // namespace gd::js
