// Options objects refuse keys they do not know, naming each and the known key it is nearest to
// (a typo such as { strenght } or { dimMult } would otherwise be silently ignored).
#pragma once

#include <napi.h>

#include <string>
#include <vector>

namespace gd::js {

// Throws a TypeError "<who>: unknown option 'x' (did you mean 'y'?)" when `options` (an object,
// or undefined/null: nothing to check) has an own enumerable key not in `known`.
void RejectUnknownKeys(const Napi::Value& options, const std::vector<std::string>& known, const std::string& who);

}  // namespace gd::js
