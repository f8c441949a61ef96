// Samplers: each one short function over a denoiser and an optional guidance
// (docs/diffusion-math.md; the noise order there is what makes seeded runs match
// the Python reference draw for draw).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "diffusion/denoiser.h"
#include "diffusion/guidance.h"
#include "diffusion/schedule.h"
#include "diffusion/x0_guidance.h"

namespace gd {

struct SampleOptions {
  std::vector<int64_t> shape;  // [B, C, H, W] (any rank >= 1 works)
  int64_t sampling_timesteps = 0;  // == schedule.timesteps: ancestral; fewer: DDIM
  // Auto: by sampling_timesteps as above. Ancestral: every step of the schedule (a respaced
  // schedule's steps); DDIM: sampling_timesteps steps (all of them: openai's ddim_sample_loop).
  // The rest: the fast samplers (fast_samplers.h), configured by `fast`.
  enum class Method {
    Auto, Ancestral, Ddim,
    DpmSolverPP, DpmSolver, UniPC,
    Euler, EulerAncestral, Heun, Dpmpp2m
  } method = Method::Auto;
  struct Fast {
    int64_t steps = 20;  // DPM-Solver / UniPC steps; k-diffusion: sigma intervals
    int64_t order = 2;
    bool singlestep = false;  // DPM-Solver's method='singlestep' (else multistep)
    std::string skip_type = "time_uniform";
    bool lower_order_final = true;
    // Dynamic thresholding of x0 (Imagen; DPM-Solver++ and UniPC).
    bool thresholding = false;
    double threshold_ratio = 0.995;
    double threshold_max = 1.0;
    bool unipc_bh2 = false;  // variant bh2 (else bh1)
    bool karras = true;      // k-diffusion: Karras sigmas (else the model's)
    double rho = 7.0;
  } fast;
  double ddim_eta = 0;
  bool clip_denoised = true;  // clamp x0 to [-1, 1]
  // DDIM: clamp the x0 that condition_score re-derives too (the math doc leaves it unclamped).
  // Without it even a zero gradient undoes clip_denoised, which a small model on the cosine
  // schedule does not survive; with it, a zero gradient gives the unguided sample exactly.
  bool clip_after_guidance = false;
  // Where the ancestral sampler evaluates the guidance: the posterior mean (the reference's
  // fix of openai/guided-diffusion#51) or x_t (the paper's code). DDIM always uses x_t.
  enum class CondInput { Mean, X } cond_input = CondInput::Mean;
  // guidanceInput 'x0' (every sampler): the guidance returns a loss on x0, its gradient through
  // the model guides the step (diffusion/x0_guidance.h). None: the guidance gives a gradient of x.
  std::optional<X0GuidanceOptions> x0_guidance;
  bool return_all_timesteps = false;  // stack x_T .. x_0 on dim 1
  bool auto_normalize = true;  // return (x + 1) / 2
  // Noise source; none: the default generator of `device` (torch.manual_seed reproduces the
  // reference). A CPU generator with a CUDA device draws on the CPU and copies.
  std::optional<at::Generator> generator;
  // One CPU generator per image (shape[0] of them), instead of `generator`: image i's noise
  // comes from its own, so it does not depend on which other images share the batch (what
  // splitting a batch over processes needs).
  std::vector<at::Generator> image_generators;
  // Called after each step: step counts from 0, total is the number of steps, t the model
  // timestep just denoised (fractional for the fast samplers). May throw to abort: the exception propagates out of the sampler.
  std::function<void(int64_t step, int64_t total, double t)> on_step;
  at::Device device = at::kCPU;
  // Editing an image (editing.h, docs/guidance.md). init: the image, in the model's space
  // ([-1, 1]), broadcastable to shape; undefined: sample from noise.
  at::Tensor init;
  // SDEdit: run the last edit_steps(n, strength) of the sampler's n steps, from init noised to
  // the first of them. 1: ordinary sampling (from noise; init only serves the mask).
  double strength = 1;
  // RePaint: broadcastable to shape, 1 where init is kept, 0 where the sampler generates; after
  // every step the kept region is init noised to the new step's level. Needs init.
  at::Tensor mask;
  // RePaint's resampling (ancestral and DDIM, with a mask): repaint_schedule's jumps.
  int64_t jump_length = 0;
  int64_t jump_count = 1;
  // On CUDA, replay the model call from a CUDA graph once shapes are known (model_call.h).
  bool cuda_graph = false;
};

// Throws std::invalid_argument: "sampler must be one of ancestral, ddim, dpm-solver++, ...; got 'foo'".
SampleOptions::Method parse_sample_method(const std::string& name);

// Throws std::invalid_argument: "condInput must be one of mean, x; got 'foo'".
SampleOptions::CondInput parse_cond_input(const std::string& name);

// DDPM ancestral sampling over all schedule.timesteps steps (options.sampling_timesteps is
// not consulted). guidance may be null.
at::Tensor sample_ancestral(const Denoiser& denoiser, const Schedule& schedule, Guidance* guidance,
                            const SampleOptions& options);

// DDIM over options.sampling_timesteps steps, guidance through condition_score.
at::Tensor sample_ddim(const Denoiser& denoiser, const Schedule& schedule, Guidance* guidance,
                       const SampleOptions& options);

// Whether the method is one of the fast samplers (fast_samplers.h).
bool is_fast_method(SampleOptions::Method method);

// options.method, or (Auto) ancestral when sampling_timesteps == schedule.timesteps, DDIM
// when fewer; throws
// std::invalid_argument for bad options.
at::Tensor sample(const Denoiser& denoiser, const Schedule& schedule, Guidance* guidance,
                  const SampleOptions& options);

// The DDIM timestep pairs (t, t_next), t_next == -1 last: linspace(-1, T-1, S+1) in float32,
// truncated, reversed (as the reference).
std::vector<std::pair<int64_t, int64_t>> ddim_time_pairs(int64_t timesteps, int64_t sampling_timesteps);

}  // namespace gd
