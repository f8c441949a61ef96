// What openai/guided-diffusion's two training loops (their TrainLoop.run_loop and
// classifier_train.py's main loop) share here: the hooks a caller gives a loop (logs, saves, a
// stop after each step, pushed batches), the result, and the batches drawn from images in memory
// as their load_data gives them.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gd {

using StepLog = std::map<std::string, double>;

struct LoopHooks {
  std::function<void(const StepLog&)> on_log;
  // The number in the files' names, and their paths.
  std::function<void(int64_t, const std::vector<std::string>&)> on_save;
  // Called after each step (and its log and save); throws to stop the run there.
  std::function<void()> after_step;
  // Instead of images: the next batch (images, labels or undefined), or nothing when the data
  // has ended, which ends the run.
  std::function<std::optional<std::pair<at::Tensor, at::Tensor>>()> next_batch;
};

// What both loops take from their flags and runLoop's options.
struct LoopSettings {
  int64_t batch_size = 1;
  // > 0: this call takes at most this many steps (their loops have no such limit); 0: none.
  int64_t steps = 0;
  int64_t log_interval = 10;
  int64_t save_interval = 10000;
  std::string out_dir;  // empty: nothing is saved
  bool random_flip = true;
};

struct OpenaiLoopResult {
  int64_t steps_run = 0;
  std::vector<int64_t> saved;  // the numbers of the checkpoints written, in order
};

// Python's %: the sign of the divisor.
inline int64_t py_mod(int64_t a, int64_t b) { return ((a % b) + b) % b; }

// Checks images float [N, C, H, W] and labels int [N] (or undefined unless required) for a batch
// of batch_size; `what` names them in the messages ("data", "evalData").
void check_loop_data(const at::Tensor& images, const at::Tensor& labels, int64_t batch_size, const std::string& what,
                     const std::string& labels_what, bool labels_required);
// As their logger.configure(dir): the folder is made when missing (nothing for "").
void make_out_dir(const std::string& dir);

// Batches of one pass after another over a shuffled order, as their DataLoader(shuffle=True,
// drop_last=True) in a `while True` loop, each image flipped left-right with probability 1/2
// when flip (their random_flip).
class ImageBatches {
 public:
  ImageBatches(at::Tensor images, at::Tensor labels, int64_t batch, bool flip, at::Generator gen);
  std::pair<at::Tensor, at::Tensor> next();

 private:
  at::Tensor images_, labels_;
  int64_t batch_;
  bool flip_;
  at::Generator gen_;
  at::Tensor order_ = at::empty({0}, at::kLong);
  int64_t at_ = 0;
};

}  // namespace gd
