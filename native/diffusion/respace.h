// Respacing: sampling a diffusion over a subset of its timesteps (openai/guided-diffusion's
// space_timesteps and SpacedDiffusion). The result is an ordinary Schedule whose
// timestep_map tells the model and the guidance which base timestep each step stands for,
// so samplers run it like any other schedule.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "diffusion/schedule.h"

namespace gd {

// The base timesteps to keep, ascending, for `spec`: "N" or "N1,N2,..." (that many steps
// from each of equal sections of the base process, positions rounded half to even as
// Python's round), or "ddimN" (the integer stride that gives exactly N steps from 0).
// Throws std::invalid_argument naming what cannot be done.
std::vector<int64_t> space_timesteps(int64_t timesteps, const std::string& spec);

// The schedule of the kept timesteps of the base schedule with these float64 betas: each new
// beta is 1 - ab[k] / ab[previous kept], so the kept ab are the base's. rescale_timesteps
// makes the model see float timesteps scaled to 0..1000 of the base process.
Schedule respace(const at::Tensor& base_betas, const std::vector<int64_t>& kept, bool rescale_timesteps);

}  // namespace gd
