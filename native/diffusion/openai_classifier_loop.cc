#include "diffusion/openai_classifier_loop.h"

#include <optional>
#include <stdexcept>

namespace gd {

OpenaiLoopResult run_classifier_loop(OpenaiClassifierStep& trainer, const at::Tensor& images, const at::Tensor& labels,
                                     const at::Tensor& val_images, const at::Tensor& val_labels, const ClassifierLoopOptions& o) {
  check_loop_data(images, labels, o.batch_size, "data", "labels", /*labels_required=*/true);
  if (val_images.defined() || val_labels.defined()) {
    if (!val_images.defined()) throw std::invalid_argument("evalLabels need evalData, the images they label");
    check_loop_data(val_images, val_labels, o.batch_size, "evalData", "evalLabels", /*labels_required=*/true);
  }
  if (o.log_interval < 1 || o.eval_interval < 1 || o.save_interval < 1) {
    throw std::invalid_argument("log_interval, eval_interval and save_interval must be >= 1");
  }
  if (o.steps < 0) throw std::invalid_argument("steps must be >= 0");
  make_out_dir(o.out_dir);
  // One generator draws the batches, t and noise: a seeded run is repeatable.
  ImageBatches train(images, labels, o.batch_size, o.random_flip, trainer.generator());
  std::optional<ImageBatches> val;
  if (val_images.defined()) val.emplace(val_images, val_labels, o.batch_size, o.random_flip, trainer.generator());
  OpenaiLoopResult result;
  auto save = [&] {
    // Their save_model: rank 0 alone writes.
    if (o.out_dir.empty() || trainer.rank() != 0) return;
    const auto files = trainer.save(o.out_dir);
    result.saved.push_back(trainer.step() - 1 + trainer.resume_step());
    if (o.on_save) o.on_save(result.saved.back(), files);
  };
  trainer.dump_log();  // what runStep / evaluate calls logged before belongs to no dump of this run
  const int64_t resume = trainer.resume_step();
  // Their `for step in range(iterations - resume_step)`; `step` continues across calls.
  while (trainer.step() + resume < trainer.iterations()) {
    if (o.steps > 0 && result.steps_run == o.steps) break;
    const int64_t step = trainer.step();
    const auto [x, y] = train.next();
    trainer.run(x, y);
    ++result.steps_run;
    if (val && step % o.eval_interval == 0) {
      const auto [vx, vy] = val->next();
      trainer.evaluate(vx, vy);
    }
    if (step % o.log_interval == 0) {
      const StepLog log = trainer.dump_log();
      if (o.on_log) o.on_log(log);
    }
    if (step != 0 && (step + resume) % o.save_interval == 0) save();
    if (o.after_step) o.after_step();
  }
  // Their last save_model after the loop (theirs writes the same files again where the last step
  // saved; here they are written once).
  const int64_t last = trainer.step() - 1 + resume;
  if (result.steps_run > 0 && (result.saved.empty() || result.saved.back() != last)) save();
  return result;
}

}  // namespace gd
