// Editing real images with any sampler (docs/guidance.md): SDEdit (Meng et al. 2022: noise an
// image to a step of the sampler's own grid and sample from there) and RePaint (Lugmayr et al.
// 2022: after every step the known region is replaced by the image noised to the new step's
// level; optionally the sampler goes back by jumps and samples a stretch again).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace gd {

struct SampleOptions;

// How many of a sampler's n steps an edit of `strength` runs: floor(n * strength) (diffusers'
// img2img rule; a relative 1e-9 absorbs the float error of products such as 0.29 * 100). 0 for
// strength 0 (the sample is the image itself), n for strength 1 (ordinary sampling from noise).
int64_t edit_steps(int64_t n, double strength);

// RePaint's time schedule over `steps` steps (their scheduler.get_schedule_jump with n_sample 1
// and no second or third jump level): the step indices visited, from steps - 1 down to -1 (the
// clean image). After reaching a multiple j of jump_length (j < steps - jump_length), the walk
// goes up jump_length steps again, jump_count - 1 times per j. jump_count 1 (or jump_length 0):
// steps - 1, ..., 0, -1. Consecutive entries differ by 1: down is a sampler step, up a forward jump.
std::vector<int64_t> repaint_schedule(int64_t steps, int64_t jump_length, int64_t jump_count);

// Throws std::invalid_argument for editing options that cannot serve `options.shape` (init or
// mask not broadcastable, strength outside [0, 1], a mask or jumps without init, jumps without a
// mask, jump_length / jump_count below 1).
void check_edit_options(const SampleOptions& options);

// The editing state of one sampling run: init broadcast to the batch, the mask, the noise source.
class Edit {
 public:
  Edit(const SampleOptions& options, std::function<at::Tensor(at::IntArrayRef)> noise);

  bool editing() const { return init_.defined(); }
  bool masked() const { return mask_.defined(); }
  // Steps of n that the sampler runs (n without init).
  int64_t steps(int64_t n) const;
  // SDEdit's start: alpha * init + sigma * z (z: the noise an ordinary run starts from).
  at::Tensor start(const at::Tensor& z, double alpha, double sigma) const;
  // x with the known region replaced by alpha * init + sigma * fresh noise (no draw when sigma
  // is 0); x itself without a mask.
  at::Tensor known(const at::Tensor& x, double alpha, double sigma) const;
  // The image itself, for strength 0.
  const at::Tensor& init() const { return init_; }

 private:
  at::Tensor init_;  // [B, ...] float32, in the model's space
  at::Tensor mask_;  // broadcastable to init, float32 in [0, 1]: 1 keeps init
  double strength_ = 1;
  std::function<at::Tensor(at::IntArrayRef)> noise_;
};

}  // namespace gd
