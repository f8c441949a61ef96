// Each file of native/js contributes its part of the addon's exports through one installer.
#pragma once

#include <napi.h>

#include <memory>

#include "diffusion/data_parallel.h"

namespace gd::dist {
class ProcessGroup;
}

namespace gd::js {

void InstallTorchFunctions(Napi::Env env, Napi::Object exports);
void InstallModuleFunctions(Napi::Env env, Napi::Object exports);
void InstallDiffusion(Napi::Env env, Napi::Object exports);
void InstallTraining(Napi::Env env, Napi::Object exports);
void InstallImage(Napi::Env env, Napi::Object exports);
void InstallOpenaiModels(Napi::Env env, Napi::Object exports);
void InstallCheckpoints(Napi::Env env, Napi::Object exports);
void InstallDistributed(Napi::Env env, Napi::Object exports);
void InstallOptionKeys(Napi::Env env, Napi::Object exports);
void InstallScheduleSampler(Napi::Env env, Napi::Object exports);

// The default process group (initProcessGroup's), or a JS Error naming `what` when none.
std::shared_ptr<dist::ProcessGroup> DefaultGroupFor(Napi::Env env, const char* what);
// Data-parallel training over the default group (kept alive by the functions), for both
// trainers; `what` names the caller in errors.
DataParallel DataParallelFor(Napi::Env env, const char* what);

}  // namespace gd::js
