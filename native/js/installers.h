// Each file of native/js contributes its part of the addon's exports through one installer.
#pragma once

#include <napi.h>

namespace gd::js {

void InstallTorchFunctions(Napi::Env env, Napi::Object exports);
void InstallModuleFunctions(Napi::Env env, Napi::Object exports);
void InstallDiffusion(Napi::Env env, Napi::Object exports);
void InstallTraining(Napi::Env env, Napi::Object exports);
void InstallImage(Napi::Env env, Napi::Object exports);
void InstallOpenaiModels(Napi::Env env, Napi::Object exports);
void InstallCheckpoints(Napi::Env env, Napi::Object exports);

}  // namespace gd::js
