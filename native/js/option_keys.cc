#include "js/option_keys.h"

#include <algorithm>
#include <cctype>

#include "js/common.h"
#include "js/installers.h"

namespace gd::js {

namespace {

// Edit distance, letters compared without case and without '_' (so min_snr_gamma is near
// minSnrGamma): a suggestion, so a plain O(n*m) table is enough.
size_t KeyDistance(const std::string& a, const std::string& b) {
  auto fold = [](const std::string& s) {
    std::string out;
    for (char c : s) {
      if (c != '_') out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    return out;
  };
  const std::string x = fold(a), y = fold(b);
  std::vector<size_t> row(y.size() + 1);
  for (size_t j = 0; j <= y.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= x.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= y.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (x[i - 1] == y[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[y.size()];
}

// The known key within a third of the unknown one's length (at least 2 edits), or "".
std::string NearestKey(const std::string& key, const std::vector<std::string>& known) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, key.size() / 3) + 1;
  for (const auto& k : known) {
    const size_t d = KeyDistance(key, k);
    if (d < best_distance) {
      best = k;
      best_distance = d;
    }
  }
  return best;
}

std::string ShownKey(const std::string& key) {
  std::string s = key.size() <= 60 ? key : key.substr(0, 40) + "...";
  for (char& c : s) c = (c < 32 || c == 127) ? '?' : c;
  return "'" + s + "'";
}

// checkOptionKeys(who, options, known): RejectUnknownKeys for lib/'s options objects.
Napi::Value CheckOptionKeys(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const std::string who = ToString(info[0], "who");
    std::vector<std::string> known;
    Napi::Array list = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); ++i) known.push_back(list.Get(i).As<Napi::String>().Utf8Value());
    RejectUnknownKeys(info[1], known, who);
    return info.Env().Undefined();
  })
}

}  // namespace

void RejectUnknownKeys(const Napi::Value& options, const std::vector<std::string>& known, const std::string& who) {
  if (IsMissing(options) || !options.IsObject()) return;
  Napi::Array keys = options.As<Napi::Object>().GetPropertyNames();
  std::vector<std::string> unknown;
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    const std::string key = keys.Get(i).ToString().Utf8Value();
    if (std::find(known.begin(), known.end(), key) == known.end()) unknown.push_back(key);
  }
  if (unknown.empty()) return;
  std::string msg = who + ": unknown option" + (unknown.size() > 1 ? "s " : " ");
  for (size_t i = 0; i < unknown.size() && i < 8; ++i) {
    msg += (i ? ", " : "") + ShownKey(unknown[i]);
    const std::string near = NearestKey(unknown[i], known);
    if (!near.empty()) msg += " (did you mean '" + near + "'?)";
  }
  if (unknown.size() > 8) msg += ", ... (" + std::to_string(unknown.size()) + " in all)";
  ThrowType(options.Env(), msg);
}

void InstallOptionKeys(Napi::Env env, Napi::Object exports) {
  exports.Set("checkOptionKeys", Napi::Function::New(env, CheckOptionKeys, "checkOptionKeys"));
}

}  // namespace gd::js
