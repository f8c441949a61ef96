#include "diffusion/openai_train_loop.h"

#include <optional>
#include <stdexcept>

namespace gd {

OpenaiLoopResult run_openai_loop(OpenaiTrainStep& trainer, const at::Tensor& images, const at::Tensor& labels,
                                 const OpenaiLoopOptions& o) {
  if (!o.next_batch) check_loop_data(images, labels, o.batch_size, "data", "labels", /*labels_required=*/false);
  if (o.log_interval < 1 || o.save_interval < 1) throw std::invalid_argument("log_interval and save_interval must be >= 1");
  if (o.steps < 0) throw std::invalid_argument("steps must be >= 0");
  make_out_dir(o.out_dir);
  std::optional<ImageBatches> batches;
  if (!o.next_batch) batches.emplace(images, labels, o.batch_size, o.random_flip, trainer.generator());
  const int64_t anneal = trainer.lr_anneal_steps();
  OpenaiLoopResult result;
  auto save = [&](int64_t number) {
    // Their save(): rank 0 alone writes.
    if (o.out_dir.empty() || trainer.rank() != 0) return;
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
