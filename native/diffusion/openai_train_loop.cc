#include "diffusion/openai_train_loop.h"

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <system_error>

namespace gd {

namespace {

// Python's %: the sign of the divisor (their final save tests (step - 1) % save_interval).
int64_t py_mod(int64_t a, int64_t b) { return ((a % b) + b) % b; }

// Batches of one pass after another over a shuffled order, as their DataLoader(shuffle=True,
// drop_last=True) in a `while True` loop.
class Batches {
 public:
  Batches(at::Tensor images, at::Tensor labels, int64_t batch, bool flip, at::Generator gen)
      : images_(std::move(images)), labels_(std::move(labels)), batch_(batch), flip_(flip), gen_(std::move(gen)) {}

  std::pair<at::Tensor, at::Tensor> next() {
    if (at_ + batch_ > order_.numel()) {
      order_ = at::randperm(images_.size(0), gen_, at::TensorOptions().dtype(at::kLong));
      at_ = 0;
    }
    const at::Tensor idx = order_.narrow(0, at_, batch_);
    at_ += batch_;
    at::Tensor x = images_.index_select(0, idx.to(images_.device()));
    if (flip_) {
      const at::Tensor flips = at::rand({batch_}, gen_) < 0.5;
      x = at::where(flips.to(x.device()).view({batch_, 1, 1, 1}), x.flip({3}), x);
    }
    at::Tensor y = labels_.defined() ? labels_.index_select(0, idx.to(labels_.device())) : at::Tensor();
    return {x, y};
  }

 private:
  at::Tensor images_, labels_;
  int64_t batch_;
  bool flip_;
  at::Generator gen_;
  at::Tensor order_ = at::empty({0}, at::kLong);
  int64_t at_ = 0;
};

}  // namespace

OpenaiLoopResult run_openai_loop(OpenaiTrainStep& trainer, const at::Tensor& images, const at::Tensor& labels,
                                 const OpenaiLoopOptions& o) {
  if (!o.next_batch) {
    if (!images.defined() || images.dim() != 4 || !images.is_floating_point()) {
      throw std::invalid_argument("data must be float images [N, C, H, W] in [-1, 1]");
    }
    if (o.batch_size < 1 || o.batch_size > images.size(0)) {
      throw std::invalid_argument("batch_size must be in [1, " + std::to_string(images.size(0)) + "] (the images in data); got " +
                                  std::to_string(o.batch_size));
    }
    if (labels.defined() && (labels.dim() != 1 || labels.size(0) != images.size(0))) {
      throw std::invalid_argument("labels must be int64 [N] with one label per image of data (" + std::to_string(images.size(0)) + ")");
    }
  }
  if (o.log_interval < 1 || o.save_interval < 1) throw std::invalid_argument("log_interval and save_interval must be >= 1");
  if (o.steps < 0) throw std::invalid_argument("steps must be >= 0");
  if (!o.out_dir.empty()) {
    // As their logger.configure(dir) does: the folder is made when missing.
    std::error_code ec;
    std::filesystem::create_directories(o.out_dir, ec);
    if (ec) throw std::runtime_error("outDir " + o.out_dir + " cannot be made: " + ec.message());
  }
  const at::Tensor y_all = labels.defined() ? labels.to(at::kLong) : at::Tensor();
  std::optional<Batches> batches;
  if (!o.next_batch) batches.emplace(images, y_all, o.batch_size, o.random_flip, trainer.generator());
  const int64_t anneal = trainer.lr_anneal_steps();
  OpenaiLoopResult result;
  auto save = [&](int64_t number) {
    if (o.out_dir.empty()) return;
    const auto files = trainer.save(o.out_dir, number);
    result.saved.push_back(number);
    if (o.on_save) o.on_save(number, files);
  };
  trainer.dump_log();  // what runStep calls logged before belongs to no dump of this run
  while (anneal == 0 || trainer.step() + trainer.resume_step() < anneal) {
    if (o.steps > 0 && result.steps_run == o.steps) break;
    std::pair<at::Tensor, at::Tensor> batch;
    if (batches) {
      batch = batches->next();
    } else {
      auto given = o.next_batch();
      if (!given) break;
      batch = std::move(*given);
    }
    trainer.run(batch.first, batch.second);
    ++result.steps_run;
    // Their self.step during the step: the count before run_loop's increment.
    const int64_t s = trainer.step() - 1;
    if (s % o.log_interval == 0) {
      const StepLog log = trainer.dump_log();
      if (o.on_log) o.on_log(log);
    }
    if (s % o.save_interval == 0) save(s + trainer.resume_step());
    if (o.after_step) o.after_step();
  }
  // "Save the last checkpoint if it wasn't already saved."
  if (py_mod(trainer.step() - 1, o.save_interval) != 0) save(trainer.step() + trainer.resume_step());
  return result;
}

}  // namespace gd
