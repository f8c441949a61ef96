#include "diffusion/train_loop_common.h"

#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace gd {

void check_loop_data(const at::Tensor& images, const at::Tensor& labels, int64_t batch_size, const std::string& what,
                     const std::string& labels_what, bool labels_required) {
  if (!images.defined() || images.dim() != 4 || !images.is_floating_point()) {
    throw std::invalid_argument(what + " must be float images [N, C, H, W] in [-1, 1]");
  }
  if (batch_size < 1 || batch_size > images.size(0)) {
    throw std::invalid_argument("batch_size must be in [1, " + std::to_string(images.size(0)) + "] (the images in " + what + "); got " +
                                std::to_string(batch_size));
  }
  if (labels_required && !labels.defined()) throw std::invalid_argument(labels_what + " are required: int64 [N], one class label per image of " + what);
  if (labels.defined() && (labels.dim() != 1 || labels.size(0) != images.size(0))) {
    throw std::invalid_argument(labels_what + " must be int64 [N] with one label per image of " + what + " (" + std::to_string(images.size(0)) + ")");
  }
}

void make_out_dir(const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error("outDir " + dir + " cannot be made: " + ec.message());
}

ImageBatches::ImageBatches(at::Tensor images, at::Tensor labels, int64_t batch, bool flip, at::Generator gen)
    : images_(std::move(images)),
      labels_(labels.defined() ? labels.to(at::kLong) : labels),
      batch_(batch),
      flip_(flip),
      gen_(std::move(gen)) {}

std::pair<at::Tensor, at::Tensor> ImageBatches::next() {
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

}  // namespace gd
